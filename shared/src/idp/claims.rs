//! The OIDC `claims` request parameter (OpenID Connect Core 5.5): what an identity provider
//! asks the ID token to carry. Entra's external authentication method sends one that marks
//! `id_token.acr` (and `amr`) essential with the values it accepts; the provider answers with
//! the first `acr` value asked for.
//!
//! Bounded: at most [`MAX_CLAIMS_BYTES`] of JSON nested at most [`MAX_CLAIMS_DEPTH`] levels
//! (the parameter is attacker-controlled text on a public route), checked before parsing.

use serde_json::Value;

/// Longest `claims` parameter accepted (Entra's is a few hundred bytes).
pub const MAX_CLAIMS_BYTES: usize = 4096;
/// Deepest nesting of arrays and objects accepted (`{"id_token":{"acr":{"values":[..]}}}` is 4).
pub const MAX_CLAIMS_DEPTH: usize = 8;

/// Why a `claims` parameter gives no `acr`: each is `error=access_denied` (profile
/// `entra-eam`) upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the request has no claims parameter")]
    Missing,
    #[error("the claims parameter is longer than {MAX_CLAIMS_BYTES} bytes")]
    TooLarge,
    #[error("the claims parameter is nested deeper than {MAX_CLAIMS_DEPTH} levels")]
    TooDeep,
    #[error("the claims parameter is not a JSON object")]
    Malformed,
    #[error("the claims parameter asks for no acr value")]
    NoAcr,
}

/// The `acr` the ID token carries: the first value `claims` asks for in `id_token.acr`
/// (`values[0]`, else `value`). Only a string of at most 256 characters counts.
pub fn requested_acr(claims: Option<&str>) -> Result<String, ClaimsError> {
    let claims = claims.ok_or(ClaimsError::Missing)?;
    if claims.len() > MAX_CLAIMS_BYTES {
        return Err(ClaimsError::TooLarge);
    }
    if nesting(claims) > MAX_CLAIMS_DEPTH {
        return Err(ClaimsError::TooDeep);
    }
    let value: Value = serde_json::from_str(claims).map_err(|_| ClaimsError::Malformed)?;
    if !value.is_object() {
        return Err(ClaimsError::Malformed);
    }
    let acr = &value["id_token"]["acr"];
    let first = match acr.get("values") {
        Some(Value::Array(values)) => values.first(),
        _ => acr.get("value"),
    };
    first
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().count() <= 256)
        .map(str::to_string)
        .ok_or(ClaimsError::NoAcr)
}

/// The deepest nesting of `[` and `{` outside strings (an upper bound of the parse's depth,
/// found in one pass without parsing).
fn nesting(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Entra's `claims` (the provider reference's example).
    const ENTRA: &str = r#"{"id_token":{"acr":{"essential":true,"values":["possessionorinherence"]},"amr":{"essential":true,"values":["face","fido","fpt","hwk","iris","otp","pop","retina","sc","sms","swk","tel","vbm"]}}}"#;

    #[test]
    fn the_first_requested_acr_value() {
        assert_eq!(requested_acr(Some(ENTRA)).unwrap(), "possessionorinherence");
        let two = r#"{"id_token":{"acr":{"values":["a","b"]}}}"#;
        assert_eq!(requested_acr(Some(two)).unwrap(), "a");
        let single = r#"{"id_token":{"acr":{"essential":true,"value":"urn:x"}}}"#;
        assert_eq!(requested_acr(Some(single)).unwrap(), "urn:x");
    }

    #[test]
    fn missing_malformed_and_acr_less_parameters_are_refused() {
        assert_eq!(requested_acr(None), Err(ClaimsError::Missing));
        for bad in ["", "[]", "\"x\"", "{", "not json"] {
            assert_eq!(
                requested_acr(Some(bad)),
                Err(ClaimsError::Malformed),
                "{bad}"
            );
        }
        for none in [
            r#"{}"#,
            r#"{"userinfo":{"acr":{"values":["a"]}}}"#,
            r#"{"id_token":{"acr":{"values":[]}}}"#,
            r#"{"id_token":{"acr":{"values":[7]}}}"#,
            r#"{"id_token":{"acr":{"values":[""]}}}"#,
            r#"{"id_token":{"acr":null}}"#,
            r#"{"id_token":{"amr":{"values":["hwk"]}}}"#,
        ] {
            assert_eq!(requested_acr(Some(none)), Err(ClaimsError::NoAcr), "{none}");
        }
    }

    #[test]
    fn size_and_depth_are_bounded() {
        let padded = format!(
            r#"{{"id_token":{{"acr":{{"values":["a"]}}}},"x":"{}"}}"#,
            "y".repeat(MAX_CLAIMS_BYTES)
        );
        assert_eq!(requested_acr(Some(&padded)), Err(ClaimsError::TooLarge));
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_CLAIMS_DEPTH + 1),
            "]".repeat(MAX_CLAIMS_DEPTH + 1)
        );
        assert_eq!(requested_acr(Some(&deep)), Err(ClaimsError::TooDeep));
        // Brackets inside strings do not count.
        let quoted = format!(
            r#"{{"id_token":{{"acr":{{"values":["{}"]}}}}}}"#,
            "[".repeat(40)
        );
        assert_eq!(requested_acr(Some(&quoted)).unwrap(), "[".repeat(40));
        let escaped = r#"{"id_token":{"acr":{"values":["a\"[[[[[[[[[[["]}}}"#;
        assert_eq!(requested_acr(Some(escaped)).unwrap(), "a\"[[[[[[[[[[[");
    }
}
