//! The route table: every route of the API, declared once (in [`route_table!`] below), with the
//! method it serves, the function that serves it, its throttling budget and its authorization.
//!
//! From this one declaration come:
//! - each function's exhaustive enum of its routes ([`AgentRoute`], [`SsfRoute`], ...): a
//!   function matches a request to `Option<(its route, the path's parameters)>` and dispatches
//!   with a `match` that has no catch-all arm, so a route added here and not handled by its
//!   function does not compile;
//! - the named entries (`ENROLL`, `EXECUTOR_GET`, ...) the agent simulator and the tests build
//!   their URLs from, and [`ROUTES`], by which the fallback tells 405 from 404;
//! - the deployment's lists, generated into marked blocks by `make routes` and checked by
//!   `make test` (`edge::route_artefacts`): `template.yaml`'s events of each function and its
//!   per-route throttling budgets, and the local router in `Cargo.toml`. `openapi.yaml` is
//!   written by hand (its schemas are the contract) and `scripts/check-api.py` checks that it
//!   names exactly the routes the template deploys.

/// One route: a path template (`{}` for each parameter) and its parameters' names (as API
/// Gateway names them), a method, the function serving it, its name (the SAM event's), its
/// throttling budget and its authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub template: &'static str,
    pub params: &'static [&'static str],
    pub method: &'static str,
    pub function: &'static str,
    pub event: &'static str,
    pub throttle: Throttle,
    pub auth: Auth,
}

/// A route's throttling budget in `template.yaml` (API Gateway throttles each route before it
/// authorizes or invokes anything): the template parameters of its rate and burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    /// The browser's and the agent's side of the stage flow.
    Stage,
    /// The relying party's plan routes.
    RelyingParty,
    /// `enroll/`: a tenth of the agent routes' budget.
    Enroll,
    /// The agent's other routes.
    Agent,
    /// Public keys and configuration documents.
    Keys,
    /// The Shared Signals receivers' routes.
    Signals,
    /// `/health`: Route 53's checkers (about 15 places, each every 10 or 30 seconds).
    Health,
}

impl Throttle {
    /// The template parameters of the budget's rate and burst limits.
    pub fn parameters(self) -> (&'static str, &'static str) {
        match self {
            Throttle::Stage => ("StageRoutesRateLimit", "StageRoutesBurstLimit"),
            Throttle::RelyingParty => ("RelyingPartyRateLimit", "RelyingPartyBurstLimit"),
            Throttle::Enroll => ("EnrollRateLimit", "EnrollRateLimit"),
            Throttle::Agent => ("AgentRoutesRateLimit", "AgentRoutesBurstLimit"),
            Throttle::Keys => ("KeysRateLimit", "KeysRateLimit"),
            Throttle::Signals => ("SignalsRateLimit", "SignalsRateLimit"),
            Throttle::Health => ("HealthRateLimit", "HealthBurstLimit"),
        }
    }
}

/// Who API Gateway lets through to a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Everyone (the function authenticates where the route needs it).
    Public,
    /// Callers signing with AWS credentials (SigV4; the relying party's routes).
    Iam,
}

/// The routes of one function, as an exhaustive enum (declared by [`route_table!`]).
pub trait FunctionRoute: Copy + Sized + 'static {
    /// The function serving these routes (its binary's name).
    const FUNCTION: &'static str;
    /// Every route of the function.
    const ALL: &'static [Self];
    /// The table's entry of this route.
    fn route(self) -> Route;

    /// The function's route serving `method` on `path`, with the path's parameters.
    fn matching<'a>(method: &str, path: &'a str) -> Option<(Self, Vec<&'a str>)> {
        Self::ALL.iter().find_map(|r| {
            let route = r.route();
            (route.method == method)
                .then(|| route.matches(path))
                .flatten()
                .map(|params| (*r, params))
        })
    }

    /// Whether some route of the function serves `path`, with any method.
    fn serves_path(path: &str) -> bool {
        Self::ALL.iter().any(|r| r.route().matches(path).is_some())
    }
}

/// Declares the table: for each function its enum of routes and, for each route, its named
/// entry (`CONST`), its variant (also its SAM event's name), method, template with its
/// parameters' names in brackets, budget and authorization; and [`ROUTES`], all of them in order.
macro_rules! route_table {
    ($(
        $(#[$fmeta:meta])*
        $function:literal => $Enum:ident {
            $(
                $(#[$meta:meta])*
                $Variant:ident = $CONST:ident:
                    $method:ident $template:literal $([$($param:ident),+])?, $throttle:ident, $auth:ident;
            )+
        }
    )+) => {
        $(
            $(
                $(#[$meta])*
                pub const $CONST: Route = Route {
                    template: $template,
                    params: &[$($(stringify!($param)),+)?],
                    method: stringify!($method),
                    function: $function,
                    event: stringify!($Variant),
                    throttle: Throttle::$throttle,
                    auth: Auth::$auth,
                };
            )+

            $(#[$fmeta])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum $Enum {
                $($(#[$meta])* $Variant,)+
            }

            impl FunctionRoute for $Enum {
                const FUNCTION: &'static str = $function;
                const ALL: &'static [Self] = &[$($Enum::$Variant,)+];
                fn route(self) -> Route {
                    match self {
                        $($Enum::$Variant => $CONST,)+
                    }
                }
            }
        )+

        /// Every route of the API, function by function.
        pub const ROUTES: &[Route] = &[$($($CONST,)+)+];
    };
}

// Adding a route: a line here (its function's `match` then fails to compile until it handles
// the new variant), `make routes` (template.yaml's event and budget, the local router), and
// its path in openapi.yaml (`make lint` checks it is there).
route_table! {
    /// The relying party's routes (IAM-authorized).
    "plans" => PlansRoute {
        CreatePlan = CREATE_PLAN: POST "/v1/plans", RelyingParty, Iam;
        ReadPlan = READ_PLAN: GET "/v1/plans/{}" [plan], RelyingParty, Iam;
    }
    /// The executor's GET: challenges and outcomes.
    "challenge" => ChallengeRoute {
        GetExecutor = EXECUTOR_GET: GET "/v1/plans/{}/executor" [plan], Stage, Public;
    }
    /// The executor's POST: responses.
    "response" => ResponseRoute {
        PostExecutor = EXECUTOR_POST: POST "/v1/plans/{}/executor" [plan], Stage, Public;
    }
    /// The browser's routes: the hosted stage page and the stage module.
    "web" => WebRoute {
        StagePage = STAGE_PAGE: GET "/v1/plans/{}/page" [plan], Stage, Public;
        StageModule = STAGE_MODULE: GET "/v1/stage.js", Stage, Public;
    }
    /// Public keys: a connector's challenge keys, the stack's assertion and signals keys; and
    /// `/health` (the region's table and challenge key, for Route 53: `crate::health`).
    "jwks" => JwksRoute {
        Jwks = JWKS: GET "/v1/connectors/{}/jwks.json" [connector], Keys, Public;
        AssertionJwks = ASSERTION_JWKS: GET "/.well-known/jwks.json", Keys, Public;
        /// Unauthenticated; at most one round of checks per instance per 10 seconds.
        Health = HEALTH: GET "/health", Health, Public;
    }
    /// The agent API (authentik's paths).
    "agent" => AgentRoute {
        Enroll = ENROLL: POST "/api/v3/endpoints/agents/connectors/enroll/", Enroll, Public;
        AgentConfig = AGENT_CONFIG: GET "/api/v3/endpoints/agents/connectors/agent_config/", Agent, Public;
        CheckIn = CHECK_IN: POST "/api/v3/endpoints/agents/connectors/check_in/", Agent, Public;
        AuthIa = AUTH_IA: POST "/api/v3/endpoints/agents/connectors/auth_ia/", Agent, Public;
        /// Public, as on the reference; answered without any AWS call.
        CurrentBrand = CURRENT_BRAND: GET "/api/v3/core/brands/current/", Agent, Public;
        /// The real agent's directory sync (users and groups for Linux logins): an empty page.
        DirectoryUsers = DIRECTORY_USERS: GET "/api/v3/core/users/", Agent, Public;
        DirectoryGroups = DIRECTORY_GROUPS: GET "/api/v3/core/groups/", Agent, Public;
    }
    /// The Shared Signals transmitter.
    "ssf" => SsfRoute {
        SsfConfiguration = SSF_CONFIGURATION: GET "/.well-known/ssf-configuration", Keys, Public;
        StreamCreate = SSF_STREAM_CREATE: POST "/ssf/streams", Signals, Public;
        StreamRead = SSF_STREAM_READ: GET "/ssf/streams", Signals, Public;
        StreamUpdate = SSF_STREAM_UPDATE: PATCH "/ssf/streams", Signals, Public;
        StreamDelete = SSF_STREAM_DELETE: DELETE "/ssf/streams", Signals, Public;
        StatusRead = SSF_STATUS_READ: GET "/ssf/status", Signals, Public;
        StatusUpdate = SSF_STATUS_UPDATE: POST "/ssf/status", Signals, Public;
        Verify = SSF_VERIFY: POST "/ssf/verify", Signals, Public;
        Poll = SSF_POLL: POST "/ssf/poll/{}" [stream], Signals, Public;
    }
    /// The OpenID provider (the device step for Entra ID, Okta, Keycloak).
    "oidc" => OidcRoute {
        OidcDiscovery = OIDC_DISCOVERY: GET "/.well-known/openid-configuration", Keys, Public;
        OidcJwks = OIDC_JWKS: GET "/oidc/jwks", Keys, Public;
        AuthorizeGet = OIDC_AUTHORIZE_GET: GET "/oidc/authorize", Stage, Public;
        AuthorizePost = OIDC_AUTHORIZE_POST: POST "/oidc/authorize", Stage, Public;
        /// Where the hosted page sends the browser when a provider plan ends (a pass, or
        /// "Back to sign-in").
        Resume = OIDC_RESUME: GET "/oidc/plans/{}/resume" [plan], Stage, Public;
        Token = OIDC_TOKEN: POST "/oidc/token", Stage, Public;
        UserinfoGet = OIDC_USERINFO_GET: GET "/oidc/userinfo", Stage, Public;
        UserinfoPost = OIDC_USERINFO_POST: POST "/oidc/userinfo", Stage, Public;
    }
}

/// Matches `path` against a template with `{}` placeholders; returns the placeholders' values.
/// `match_path("/v1/plans/abc/executor", "/v1/plans/{}/executor") == Some(vec!["abc"])`.
pub fn match_path<'a>(path: &'a str, template: &str) -> Option<Vec<&'a str>> {
    let mut values = Vec::new();
    let mut got = path.split('/');
    for want in template.split('/') {
        let seg = got.next()?;
        if want == "{}" {
            if seg.is_empty() {
                return None;
            }
            values.push(seg);
        } else if want != seg {
            return None;
        }
    }
    got.next().is_none().then_some(values)
}

impl Route {
    /// The path's parameters if it is this route's path (any method).
    pub fn matches<'a>(&self, path: &'a str) -> Option<Vec<&'a str>> {
        match_path(path, self.template)
    }

    /// The path of this route with `params` in its placeholders, in order.
    pub fn path(&self, params: &[&str]) -> String {
        let mut params = params.iter();
        self.template
            .split('/')
            .map(|seg| match seg {
                "{}" => params.next().copied().unwrap_or(""),
                seg => seg,
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl Route {
    /// The route's path as API Gateway names it (`/v1/plans/{plan}/executor`): each `{}` of the
    /// template with its parameter's name.
    pub fn api_gateway_path(&self) -> String {
        let mut names = self.params.iter();
        self.template
            .split('/')
            .map(|seg| match seg {
                "{}" => format!("{{{}}}", names.next().copied().unwrap_or("")),
                seg => seg.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The route as API Gateway names it (`GET /v1/plans/{plan}/executor`), as `template.yaml`
    /// declares it.
    pub fn api_gateway_key(&self) -> String {
        format!("{} {}", self.method, self.api_gateway_path())
    }
}

/// The template of the route serving `path`, or `unrouted`.
pub fn template_of(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| r.matches(path).is_some())
        .map_or("unrouted", |r| r.template)
}

/// Whether some route serves `path` (with any method).
pub fn is_routed(path: &str) -> bool {
    ROUTES.iter().any(|r| r.matches(path).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_gateway_keys_name_each_parameter() {
        assert_eq!(
            EXECUTOR_GET.api_gateway_key(),
            "GET /v1/plans/{plan}/executor"
        );
        assert_eq!(
            JWKS.api_gateway_key(),
            "GET /v1/connectors/{connector}/jwks.json"
        );
        assert_eq!(CREATE_PLAN.api_gateway_key(), "POST /v1/plans");
        assert_eq!(SSF_POLL.api_gateway_key(), "POST /ssf/poll/{stream}");
        // Each placeholder has its name.
        for r in ROUTES {
            assert_eq!(r.template.matches("{}").count(), r.params.len(), "{r:?}");
        }
    }

    #[test]
    fn paths_match_templates() {
        assert_eq!(
            match_path("/v1/plans/abc/executor", "/v1/plans/{}/executor"),
            Some(vec!["abc"])
        );
        assert_eq!(match_path("/v1/plans/abc", "/v1/plans/{}/executor"), None);
        assert_eq!(
            match_path("/v1/plans//executor", "/v1/plans/{}/executor"),
            None
        );
        assert_eq!(
            match_path("/v1/plans/a/executor/x", "/v1/plans/{}/executor"),
            None
        );
        assert_eq!(match_path("/v1/plans", "/v1/plans"), Some(vec![]));
    }

    #[test]
    fn each_function_matches_its_own_routes_by_method_and_path() {
        assert_eq!(
            AgentRoute::matching("POST", "/api/v3/endpoints/agents/connectors/enroll/"),
            Some((AgentRoute::Enroll, vec![]))
        );
        assert_eq!(
            AgentRoute::matching("GET", "/api/v3/endpoints/agents/connectors/enroll/"),
            None
        );
        assert!(AgentRoute::serves_path(
            "/api/v3/endpoints/agents/connectors/enroll/"
        ));
        assert_eq!(
            SsfRoute::matching("POST", "/ssf/poll/s1"),
            Some((SsfRoute::Poll, vec!["s1"]))
        );
        assert_eq!(SsfRoute::matching("POST", "/v1/plans"), None);
        assert_eq!(
            PlansRoute::matching("GET", "/v1/plans/p1"),
            Some((PlansRoute::ReadPlan, vec!["p1"]))
        );
        // Each function's enum holds exactly its entries of the table, in the table's order.
        fn entries<R: FunctionRoute>() -> Vec<Route> {
            R::ALL.iter().map(|r| r.route()).collect()
        }
        let by_enum = [
            entries::<PlansRoute>(),
            entries::<ChallengeRoute>(),
            entries::<ResponseRoute>(),
            entries::<WebRoute>(),
            entries::<JwksRoute>(),
            entries::<AgentRoute>(),
            entries::<SsfRoute>(),
            entries::<OidcRoute>(),
        ]
        .concat();
        assert_eq!(by_enum, ROUTES);
        assert!(AgentRoute::ALL
            .iter()
            .all(|r| r.route().function == AgentRoute::FUNCTION));
    }

    #[test]
    fn routes_build_and_match_their_paths() {
        assert_eq!(EXECUTOR_GET.path(&["p1"]), "/v1/plans/p1/executor");
        assert_eq!(
            EXECUTOR_POST.matches("/v1/plans/p1/executor"),
            Some(vec!["p1"])
        );
        assert_eq!(template_of("/v1/plans/p1/page"), "/v1/plans/{}/page");
        assert_eq!(template_of("/nowhere"), "unrouted");
        assert!(is_routed("/api/v3/core/brands/current/"));
        // No two entries with the same template and method.
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.template == b.template && a.method == b.method), "{a:?}");
            }
        }
    }
}
