//! `stage set-help`: the operator's help text and link for the people a stage denies.

use crate::error::CoreError;
use crate::model::{Stage, StageHelp, MAX_HELP_TEXT_CHARS, MAX_HELP_URL_LEN};
use crate::ports::Directory;

/// The help as given, checked: a text of at most [`MAX_HELP_TEXT_CHARS`] characters without
/// control characters (line breaks allowed), and an `https:` URL without user information.
/// Blank values count as absent; nothing given at all is no help.
pub fn stage_help(text: Option<&str>, url: Option<&str>) -> Result<Option<StageHelp>, CoreError> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let url = url.map(str::trim).filter(|u| !u.is_empty());
    if let Some(t) = text {
        if t.chars().count() > MAX_HELP_TEXT_CHARS {
            return Err(CoreError::BadRequest(format!(
                "the help text is longer than {MAX_HELP_TEXT_CHARS} characters"
            )));
        }
        if t.chars().any(|c| c.is_control() && c != '\n') {
            return Err(CoreError::BadRequest(
                "the help text may not contain control characters (line breaks are fine)".into(),
            ));
        }
    }
    let url = match url {
        None => None,
        Some(u) => Some(help_url(u)?),
    };
    let help = StageHelp {
        text: text.map(str::to_string),
        url,
    };
    Ok((!help.is_empty()).then_some(help))
}

fn help_url(u: &str) -> Result<String, CoreError> {
    let refused = || {
        CoreError::BadRequest(format!(
            "the help link must be an https: URL without user information, of at most {MAX_HELP_URL_LEN} characters"
        ))
    };
    if u.len() > MAX_HELP_URL_LEN {
        return Err(refused());
    }
    let parsed = url::Url::parse(u).map_err(|_| refused())?;
    if parsed.scheme() != "https"
        || parsed.host_str().is_none()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(refused());
    }
    Ok(parsed.to_string())
}

/// Sets (or, with neither text nor URL, removes) the stage's help. Plans created from then on
/// carry it to the hosted page.
pub async fn set_stage_help<D: Directory>(
    dir: &D,
    stage_id: &str,
    text: Option<&str>,
    url: Option<&str>,
) -> Result<Stage, CoreError> {
    let help = stage_help(text, url)?;
    let mut stage = dir
        .get_stage(stage_id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("stage {stage_id}")))?;
    stage.help = help;
    dir.put_stage(&stage).await?;
    Ok(stage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_links_are_https_without_userinfo() {
        let ok = stage_help(
            Some("  Call the desk.\nExt 12 "),
            Some("https://help.example.com/a?b=1"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.text.as_deref(), Some("Call the desk.\nExt 12"));
        assert_eq!(ok.url.as_deref(), Some("https://help.example.com/a?b=1"));
        for bad in [
            "http://help.example.com",
            "javascript:alert(1)",
            "https://user:pw@help.example.com",
            "data:text/html,x",
            "help.example.com",
        ] {
            assert!(
                matches!(stage_help(None, Some(bad)), Err(CoreError::BadRequest(_))),
                "{bad}"
            );
        }
        let long = format!("https://h.example/{}", "a".repeat(MAX_HELP_URL_LEN));
        assert!(stage_help(None, Some(&long)).is_err());
    }

    #[test]
    fn help_texts_are_bounded_and_blank_means_none() {
        assert_eq!(stage_help(None, None), Ok(None));
        assert_eq!(stage_help(Some("  "), Some("")), Ok(None));
        assert!(stage_help(Some(&"x".repeat(MAX_HELP_TEXT_CHARS + 1)), None).is_err());
        assert!(stage_help(Some(&"é".repeat(MAX_HELP_TEXT_CHARS)), None).is_ok());
        assert!(stage_help(Some("bell\u{7}"), None).is_err());
    }
}
