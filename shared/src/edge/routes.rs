//! The route table: every route of the API, once, with the methods it serves and the function
//! that serves it. Functions match requests by these named entries; the fallback tells 405
//! from 404 with the whole table; the agent simulator builds its URLs from it; and
//! `scripts/check-api.py` checks that `template.yaml`, `openapi.yaml` and the local router
//! (`Cargo.toml`) name exactly these routes, so a route added in one place fails `make test`.

/// One route: a path template (`{}` for each parameter), a method, the function serving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub template: &'static str,
    pub method: &'static str,
    pub function: &'static str,
}

pub const CREATE_PLAN: Route = route("/v1/plans", "POST", "plans");
pub const READ_PLAN: Route = route("/v1/plans/{}", "GET", "plans");
pub const EXECUTOR_GET: Route = route("/v1/plans/{}/executor", "GET", "challenge");
pub const EXECUTOR_POST: Route = route("/v1/plans/{}/executor", "POST", "response");
pub const STAGE_PAGE: Route = route("/v1/plans/{}/page", "GET", "web");
pub const STAGE_MODULE: Route = route("/v1/stage.js", "GET", "web");
pub const JWKS: Route = route("/v1/connectors/{}/jwks.json", "GET", "jwks");
pub const ASSERTION_JWKS: Route = route("/.well-known/jwks.json", "GET", "jwks");
pub const ENROLL: Route = route(
    "/api/v3/endpoints/agents/connectors/enroll/",
    "POST",
    "agent",
);
pub const AGENT_CONFIG: Route = route(
    "/api/v3/endpoints/agents/connectors/agent_config/",
    "GET",
    "agent",
);
pub const CHECK_IN: Route = route(
    "/api/v3/endpoints/agents/connectors/check_in/",
    "POST",
    "agent",
);
pub const AUTH_IA: Route = route(
    "/api/v3/endpoints/agents/connectors/auth_ia/",
    "POST",
    "agent",
);
pub const CURRENT_BRAND: Route = route("/api/v3/core/brands/current/", "GET", "agent");
/// The real agent's directory sync (users and groups for Linux logins): an empty page.
pub const DIRECTORY_USERS: Route = route("/api/v3/core/users/", "GET", "agent");
pub const DIRECTORY_GROUPS: Route = route("/api/v3/core/groups/", "GET", "agent");
pub const SSF_CONFIGURATION: Route = route("/.well-known/ssf-configuration", "GET", "ssf");
pub const SSF_STREAM_CREATE: Route = route("/ssf/streams", "POST", "ssf");
pub const SSF_STREAM_READ: Route = route("/ssf/streams", "GET", "ssf");
pub const SSF_STREAM_UPDATE: Route = route("/ssf/streams", "PATCH", "ssf");
pub const SSF_STREAM_DELETE: Route = route("/ssf/streams", "DELETE", "ssf");
pub const SSF_STATUS_READ: Route = route("/ssf/status", "GET", "ssf");
pub const SSF_STATUS_UPDATE: Route = route("/ssf/status", "POST", "ssf");
pub const SSF_VERIFY: Route = route("/ssf/verify", "POST", "ssf");
pub const SSF_POLL: Route = route("/ssf/poll/{}", "POST", "ssf");

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    CREATE_PLAN,
    READ_PLAN,
    EXECUTOR_GET,
    EXECUTOR_POST,
    STAGE_PAGE,
    STAGE_MODULE,
    JWKS,
    ASSERTION_JWKS,
    ENROLL,
    AGENT_CONFIG,
    CHECK_IN,
    AUTH_IA,
    CURRENT_BRAND,
    DIRECTORY_USERS,
    DIRECTORY_GROUPS,
    SSF_CONFIGURATION,
    SSF_STREAM_CREATE,
    SSF_STREAM_READ,
    SSF_STREAM_UPDATE,
    SSF_STREAM_DELETE,
    SSF_STATUS_READ,
    SSF_STATUS_UPDATE,
    SSF_VERIFY,
    SSF_POLL,
];

const fn route(template: &'static str, method: &'static str, function: &'static str) -> Route {
    Route {
        template,
        method,
        function,
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
    /// The route as API Gateway names it (`GET /v1/plans/{plan}/executor`): each parameter is
    /// named after the collection it indexes (`plans/{}` -> `{plan}`), as `template.yaml`
    /// declares them (`scripts/check-api.py` checks both name the same routes).
    pub fn api_gateway_key(&self) -> String {
        let segments: Vec<&str> = self.template.split('/').collect();
        let named: Vec<String> = segments
            .iter()
            .enumerate()
            .map(|(i, seg)| match *seg {
                "{}" => {
                    let collection = i.checked_sub(1).map_or("", |j| segments[j]);
                    format!("{{{}}}", collection.strip_suffix('s').unwrap_or(collection))
                }
                seg => seg.to_string(),
            })
            .collect();
        format!("{} {}", self.method, named.join("/"))
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
    fn api_gateway_keys_name_each_parameter_after_its_collection() {
        assert_eq!(
            EXECUTOR_GET.api_gateway_key(),
            "GET /v1/plans/{plan}/executor"
        );
        assert_eq!(
            JWKS.api_gateway_key(),
            "GET /v1/connectors/{connector}/jwks.json"
        );
        assert_eq!(CREATE_PLAN.api_gateway_key(), "POST /v1/plans");
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
