//! `endpoint-admin stage ...`: stages, their mode and posture policy.

use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::admin;
use endpoint_core::assertion::parse_audiences;
use endpoint_core::audit::AuditKind;
use endpoint_core::compliance::admin::set_stage_policy;
use endpoint_core::model::Stage;
use endpoint_core::ports::{Directory, SystemRandom};
use serde_json::{json, Value};

use crate::cli::StageCommand;
use crate::error::AdminError;
use crate::output::{audit, Output};

fn stage_json(s: &Stage) -> Value {
    json!({
        "id": s.id,
        "connector": s.connector,
        "mode": s.mode.as_str(),
        "policy": s.policy.as_ref().map(|p| json!({"id": p.id, "version": p.version, "when_unknown": p.when_unknown.as_str()})),
        // null: a stage from before origins existed, with the older redirect rule.
        "redirect_origins": s.redirect_origins,
        // Besides the stage id, which a plan may always ask for.
        "audiences": s.audiences,
        // What people denied by the stage are told (null: nothing).
        "help": s.help.as_ref().map(|h| json!({"text": h.text, "url": h.url})),
    })
}

fn stage_line(s: &Stage) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        s.id,
        s.connector,
        s.mode.as_str(),
        s.policy
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| format!("{} v{}", p.id, p.version))
    )
}

/// One stage: its line, then its help (text, link) when it has one.
fn shown(s: &Stage) -> Output {
    let mut plain = stage_line(s);
    if let Some(h) = &s.help {
        for (name, value) in [("help-text", &h.text), ("help-url", &h.url)] {
            if let Some(v) = value {
                plain.push_str(&format!("\n{name}\t{}", v.replace('\n', "\\n")));
            }
        }
    }
    Output {
        plain,
        json: stage_json(s),
        audit: None,
    }
}

pub(crate) async fn stage(
    cmd: &StageCommand,
    store: &DynamoStore,
    rng: &SystemRandom,
) -> Result<Output, AdminError> {
    match cmd {
        StageCommand::Create {
            connector,
            mode,
            policy,
            redirect_origins,
            audiences,
        } => {
            // Checked before the stage exists, so that a refused audience creates nothing.
            let audiences = parse_audiences(audiences)?;
            let mut stage =
                admin::create_stage(store, rng, connector, *mode, redirect_origins).await?;
            if !audiences.is_empty() {
                stage = admin::set_audiences(store, &stage.id, &audiences).await?;
            }
            if let Some(p) = policy {
                stage = set_stage_policy(store, &stage.id, Some(p)).await?;
            }
            Ok(Output::value("id", &stage.id).audited(
                audit(AuditKind::StageCreated)
                    .connector(connector)
                    .reason(format!("stage {} ({})", stage.id, mode.as_str())),
            ))
        }
        StageCommand::SetRedirectOrigins { stage, origins } => {
            let s = admin::set_redirect_origins(store, stage, origins).await?;
            let list = s.redirect_origins.clone().unwrap_or_default();
            let reason = format!("stage {} redirect origins [{}]", s.id, list.join(" "));
            Ok(shown(&s).audited(
                audit(AuditKind::StageChanged)
                    .connector(&s.connector)
                    .reason(reason),
            ))
        }
        StageCommand::SetAudiences { stage, audiences } => {
            let s = admin::set_audiences(store, stage, audiences).await?;
            let reason = format!("stage {} audiences [{}]", s.id, s.audiences.join(" "));
            Ok(shown(&s).audited(
                audit(AuditKind::StageChanged)
                    .connector(&s.connector)
                    .reason(reason),
            ))
        }
        StageCommand::SetPolicy { stage, policy } => {
            let policy = (policy != "none").then_some(policy.as_str());
            let s = set_stage_policy(store, stage, policy).await?;
            let reason = format!("stage {} policy {}", s.id, policy.unwrap_or("none"));
            Ok(shown(&s).audited(
                audit(AuditKind::StageChanged)
                    .connector(&s.connector)
                    .reason(reason),
            ))
        }
        StageCommand::SetHelp { stage, text, url } => {
            let s = admin::set_stage_help(store, stage, text.as_deref(), url.as_deref()).await?;
            let what = match &s.help {
                None => "none".to_string(),
                Some(h) => format!(
                    "text {} url {}",
                    if h.text.is_some() { "set" } else { "none" },
                    h.url.as_deref().unwrap_or("none")
                ),
            };
            Ok(shown(&s).audited(
                audit(AuditKind::StageChanged)
                    .connector(&s.connector)
                    .reason(format!("stage {} help {what}", s.id)),
            ))
        }
        StageCommand::Show { stage } => {
            let s = store
                .get_stage(stage)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("stage {stage}")))?;
            Ok(shown(&s))
        }
        StageCommand::List => {
            let mut list = store.list_stages().await?;
            list.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(Output {
                plain: list.iter().map(stage_line).collect::<Vec<_>>().join("\n"),
                json: json!({"stages": list.iter().map(stage_json).collect::<Vec<_>>()}),
                audit: None,
            })
        }
    }
}
