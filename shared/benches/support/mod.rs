//! The benchmarks' harness: each benchmark's median time per iteration, with its fastest and
//! slowest sample.
//!
//! Why not criterion: the benchmarks need a median and nothing else (no plots, no comparison with a
//! saved baseline, no HTML), and criterion with the 15 crates it brings cost about 13 s of CPU in
//! every fresh clone's `make test`, which builds every target (clippy on them) within a 5-minute
//! budget (docs/PERFORMANCE.md, 6g). The method is criterion's simplest: a warm-up that measures
//! one iteration's time, then `SAMPLES` samples, each timing a batch of iterations sized so that
//! the samples together take about `MEASURE`.
//!
//! `cargo bench` runs every benchmark (or those whose name contains the argument given:
//! `cargo bench -p endpoint-core --bench core -- validate`); built and run without `--bench`
//! (`cargo test --benches`), each routine runs once, as a test that it works.

use std::time::{Duration, Instant};

pub use std::hint::black_box;

const WARM_UP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);
const SAMPLES: usize = 50;

/// The benchmarks of one bench target, run as they are declared.
pub struct Harness {
    bench: bool,
    filter: Option<String>,
}

impl Harness {
    /// From the arguments `cargo bench` passes (`--bench`, then an optional name filter).
    pub fn from_args() -> Self {
        let mut harness = Harness {
            bench: false,
            filter: None,
        };
        for arg in std::env::args().skip(1) {
            if arg == "--bench" {
                harness.bench = true;
            } else if !arg.starts_with('-') {
                harness.filter = Some(arg);
            }
        }
        harness
    }

    /// Runs `routine` as the benchmark `name` (unless the filter leaves it out) and prints its
    /// figures; `routine` calls one of `Bencher`'s methods once.
    pub fn bench_function(&mut self, name: &str, routine: impl FnOnce(&mut Bencher)) {
        if self.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            return;
        }
        let mut bencher = Bencher {
            bench: self.bench,
            per_iteration: Vec::new(),
            batch: 0,
        };
        routine(&mut bencher);
        if !self.bench {
            println!("{name}: ran once (not measured: run it with cargo bench)");
            return;
        }
        let s = &mut bencher.per_iteration;
        assert!(
            !s.is_empty(),
            "{name}: the routine measured nothing (call iter or iter_batched)"
        );
        s.sort_by(f64::total_cmp);
        let median = if s.len() % 2 == 1 {
            s[s.len() / 2]
        } else {
            (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
        };
        println!(
            "{name:<56} median {:>10}   [fastest {}, slowest {}; {} samples of {} iterations]",
            human(median),
            human(s[0]),
            human(s[s.len() - 1]),
            s.len(),
            bencher.batch
        );
    }
}

/// What a benchmark's routine measures with.
pub struct Bencher {
    bench: bool,
    /// Nanoseconds per iteration, one entry per sample.
    per_iteration: Vec<f64>,
    batch: u64,
}

impl Bencher {
    /// Times `routine`, its result kept from the optimiser and dropped within the timing (as a
    /// caller would drop it).
    pub fn iter<O>(&mut self, mut routine: impl FnMut() -> O) {
        if !self.bench {
            black_box(routine());
            return;
        }
        let batch = self.batch_for(|| {
            black_box(routine());
        });
        for _ in 0..SAMPLES {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(routine());
            }
            self.per_iteration
                .push(start.elapsed().as_nanos() as f64 / batch as f64);
        }
    }

    /// Times `routine` on inputs that `setup` makes outside the timing, one input per iteration
    /// (for routines that consume or change their input). Each iteration is timed on its own, so
    /// this suits routines of a microsecond and more.
    #[allow(
        dead_code,
        reason = "each bench target compiles this module; `core` does not use it"
    )]
    pub fn iter_batched<I, O>(
        &mut self,
        mut setup: impl FnMut() -> I,
        mut routine: impl FnMut(I) -> O,
    ) {
        if !self.bench {
            black_box(routine(setup()));
            return;
        }
        let batch = self.batch_for(|| {
            let input = setup();
            black_box(routine(input));
        });
        for _ in 0..SAMPLES {
            let mut elapsed = Duration::ZERO;
            for _ in 0..batch {
                let input = setup();
                let start = Instant::now();
                let output = routine(input);
                elapsed += start.elapsed();
                drop(black_box(output));
            }
            self.per_iteration
                .push(elapsed.as_nanos() as f64 / batch as f64);
        }
    }

    /// Runs `once` for the warm-up and returns how many iterations a sample takes.
    fn batch_for(&mut self, mut once: impl FnMut()) -> u64 {
        let start = Instant::now();
        let mut runs = 0u64;
        while runs == 0 || start.elapsed() < WARM_UP {
            once();
            runs += 1;
        }
        let per_run = start.elapsed().as_nanos() as f64 / runs as f64;
        let per_sample = MEASURE.as_nanos() as f64 / SAMPLES as f64;
        self.batch = ((per_sample / per_run) as u64).max(1);
        self.batch
    }
}

/// Nanoseconds in the unit that suits them.
fn human(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.3} µs", ns / 1_000.0)
    } else if ns < 1_000_000_000.0 {
        format!("{:.3} ms", ns / 1_000_000.0)
    } else {
        format!("{:.3} s", ns / 1_000_000_000.0)
    }
}
