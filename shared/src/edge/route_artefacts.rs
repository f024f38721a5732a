//! The deployment's lists of routes, generated from the route table ([`super::routes`]): in
//! `template.yaml` each function's HTTP events and the per-route throttling budgets, in
//! `Cargo.toml` the local router of `cargo lambda watch`. Each sits between two marker comments
//! (`# generated: <block> ...` and `# end generated: <block>`). The test below fails when a block
//! differs from the table; `make routes` (the same test with `ROUTES_WRITE=1`) rewrites them.
//!
//! Generated rather than checked: these lists say nothing the table does not (a path, a method,
//! a function, a budget, an authorizer), so writing them by hand would only be a chance to get
//! them wrong. `openapi.yaml` is the exception, checked and not generated (`scripts/check-api.py`):
//! its schemas are the contract and written by hand.

use std::path::{Path, PathBuf};

use super::routes::{Auth, Route, ROUTES};

/// The methods the local router sends to `fallback` on a path that several functions serve
/// (on a path of one function, that function answers 405 itself).
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// The functions that serve routes, in the table's order.
fn functions() -> Vec<&'static str> {
    let mut functions: Vec<&str> = Vec::new();
    for r in ROUTES {
        if !functions.contains(&r.function) {
            functions.push(r.function);
        }
    }
    functions
}

/// A path for YAML: quoted when it has a parameter (braces open a flow mapping).
fn yaml_path(route: &Route) -> String {
    let path = route.api_gateway_path();
    if path.contains('{') {
        format!("\"{path}\"")
    } else {
        path
    }
}

/// The `Events` of `function` in `template.yaml`.
pub fn template_events(function: &str) -> String {
    ROUTES
        .iter()
        .filter(|r| r.function == function)
        .map(|r| {
            let auth = match r.auth {
                Auth::Public => "",
                Auth::Iam => ", Auth: { Authorizer: AWS_IAM }",
            };
            format!(
                "        {}:\n          Type: HttpApi\n          Properties: {{ ApiId: !Ref HttpApi, Method: {}, Path: {}{auth} }}\n",
                r.event,
                r.method,
                yaml_path(r)
            )
        })
        .collect()
}

/// The HTTP API's `RouteSettings`: each route's throttling budget.
pub fn template_budgets() -> String {
    ROUTES
        .iter()
        .map(|r| {
            let (rate, burst) = r.throttle.parameters();
            format!(
                "        \"{}\": {{ ThrottlingRateLimit: !Ref {rate}, ThrottlingBurstLimit: !Ref {burst} }}\n",
                r.api_gateway_key()
            )
        })
        .collect()
}

/// The `[workspace.metadata.lambda.watch.router]` table's entries: a path one function serves
/// goes to it; a path several serve goes by method, the other methods to `fallback`; the rest
/// of the paths to `fallback` (API Gateway's `$default`).
pub fn local_router() -> String {
    let mut paths: Vec<(String, Vec<&Route>)> = Vec::new();
    for r in ROUTES {
        let path = r.api_gateway_path();
        match paths.iter_mut().find(|(p, _)| *p == path) {
            Some((_, routes)) => routes.push(r),
            None => paths.push((path, vec![r])),
        }
    }
    let mut out = String::new();
    for (path, routes) in paths {
        if routes.iter().all(|r| r.function == routes[0].function) {
            out.push_str(&format!("\"{path}\" = \"{}\"\n", routes[0].function));
            continue;
        }
        out.push_str(&format!("\"{path}\" = [\n"));
        for method in METHODS {
            let function = routes
                .iter()
                .find(|r| r.method == method)
                .map_or("fallback", |r| r.function);
            out.push_str(&format!(
                "    {{ method = \"{method}\", function = \"{function}\" }},\n"
            ));
        }
        out.push_str("]\n");
    }
    out.push_str("\"/\" = \"fallback\"\n\"/{*rest}\" = \"fallback\"\n");
    out
}

/// `text` with the lines between the markers of `block` replaced by `body`; `None` without
/// both markers.
pub fn replace_block(text: &str, block: &str, body: &str) -> Option<String> {
    let begin = format!("# generated: {block} (");
    let end = format!("# end generated: {block}\n");
    let start = text.find(&begin)?;
    let body_start = start + text[start..].find('\n')? + 1;
    let end_at = body_start + text[body_start..].find(&end)?;
    let end_line = text[..end_at].rfind('\n').map_or(0, |i| i + 1);
    Some(format!(
        "{}{body}{}",
        &text[..body_start],
        &text[end_line..]
    ))
}

/// Every generated block of `file` (a path from the repository's root) and its body.
fn blocks(file: &str) -> Vec<(String, String)> {
    match file {
        "template.yaml" => functions()
            .into_iter()
            .map(|f| (format!("events of {f}"), template_events(f)))
            .chain([("route budgets".to_string(), template_budgets())])
            .collect(),
        _ => vec![("local router".to_string(), local_router())],
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the core crate sits in the workspace")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make routes` runs this with `ROUTES_WRITE=1`: it rewrites the blocks instead of failing.
    #[test]
    fn template_and_local_router_list_exactly_the_route_table() {
        let write = std::env::var_os("ROUTES_WRITE").is_some();
        for file in ["template.yaml", "Cargo.toml"] {
            let path = root().join(file);
            let text = std::fs::read_to_string(&path).expect("the file is in the repository");
            let mut generated = text.clone();
            for (block, body) in blocks(file) {
                generated = replace_block(&generated, &block, &body).unwrap_or_else(|| {
                    panic!("{file}: no `# generated: {block} (` ... `# end generated: {block}` markers")
                });
            }
            if generated == text {
                continue;
            }
            if write {
                std::fs::write(&path, generated).expect("the file is writable");
            } else {
                panic!("{file} lists routes that differ from shared/src/edge/routes.rs: run `make routes`");
            }
        }
        // No HTTP event outside the generated blocks: every function's events are the table's,
        // and the one other is the fallback's `$default`.
        let template = std::fs::read_to_string(root().join("template.yaml"))
            .expect("the template is in the repository");
        assert_eq!(
            template.matches("Type: HttpApi\n").count(),
            ROUTES.len() + 1,
            "template.yaml has HTTP events of no route of the table"
        );
    }

    #[test]
    fn blocks_are_replaced_between_their_markers_only() {
        let text = "a:\n  # generated: x (make routes)\n  old\n  # end generated: x\nb\n";
        assert_eq!(
            replace_block(text, "x", "  new\n  lines\n").as_deref(),
            Some("a:\n  # generated: x (make routes)\n  new\n  lines\n  # end generated: x\nb\n")
        );
        assert_eq!(replace_block(text, "y", ""), None);
    }

    #[test]
    fn a_path_of_several_functions_goes_by_method_in_the_local_router() {
        let router = local_router();
        assert!(router.contains(
            "\"/v1/plans/{plan}/executor\" = [\n    { method = \"GET\", function = \"challenge\" },\n    { method = \"POST\", function = \"response\" },\n    { method = \"PUT\", function = \"fallback\" },"
        ));
        assert!(router.contains("\"/ssf/streams\" = \"ssf\"\n"));
        assert!(router.ends_with("\"/{*rest}\" = \"fallback\"\n"));
        assert!(template_events("plans").contains(
            "Properties: { ApiId: !Ref HttpApi, Method: GET, Path: \"/v1/plans/{plan}\", Auth: { Authorizer: AWS_IAM } }"
        ));
    }
}
