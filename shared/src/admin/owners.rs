//! Device owners, the operator's side: `device set-owners` and an enrollment token's
//! `--owner` (the person the devices it enrolls belong to).

use super::check_name;
use crate::error::CoreError;
use crate::model::{is_owner_name, MAX_DEVICE_OWNERS, MAX_OWNER_CHARS};
use crate::ports::DeviceStore;

/// Checks one owner name (a username or an email address).
pub fn check_owner(owner: &str) -> Result<(), CoreError> {
    if !is_owner_name(owner) {
        return Err(CoreError::BadRequest(format!(
            "an owner must be a username or email address of 1 to {MAX_OWNER_CHARS} characters, without spaces, control characters or invisible formatting characters"
        )));
    }
    Ok(())
}

/// The owners as stored: each checked, exact duplicates dropped (the first kept, in the
/// operator's order), at most [`MAX_DEVICE_OWNERS`].
pub fn check_owners(owners: &[String]) -> Result<Vec<String>, CoreError> {
    let mut out: Vec<String> = Vec::new();
    for o in owners {
        check_owner(o)?;
        if !out.contains(o) {
            out.push(o.clone());
        }
        if out.len() > MAX_DEVICE_OWNERS {
            return Err(CoreError::BadRequest(format!(
                "a device has at most {MAX_DEVICE_OWNERS} owners"
            )));
        }
    }
    Ok(out)
}

/// Replaces the device's owners (an empty list: it belongs to nobody). Answers them as stored.
pub async fn set_device_owners<S: DeviceStore>(
    store: &S,
    serial: &str,
    owners: &[String],
) -> Result<Vec<String>, CoreError> {
    check_name("serial", serial)?;
    let owners = check_owners(owners)?;
    if !store.set_device_owners(serial, &owners).await? {
        return Err(CoreError::NotFound(format!("device {serial}")));
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn owners_are_checked_deduplicated_and_bounded() {
        assert_eq!(
            check_owners(&names(&["a@x.example", "bob", "a@x.example"])).unwrap(),
            names(&["a@x.example", "bob"])
        );
        for bad in ["", "with space", "tab\there", "zero\u{200B}width"] {
            assert!(check_owners(&names(&[bad])).is_err(), "{bad:?}");
        }
        let long = "a".repeat(MAX_OWNER_CHARS + 1);
        assert!(check_owners(&[long]).is_err());
        assert!(check_owners(&["a".repeat(MAX_OWNER_CHARS)]).is_ok());
        let many: Vec<String> = (0..=MAX_DEVICE_OWNERS).map(|i| format!("u{i}")).collect();
        assert!(check_owners(&many).is_err());
        assert!(check_owners(&many[..MAX_DEVICE_OWNERS]).is_ok());
        // Duplicates do not count against the bound.
        let mut dup = many[..MAX_DEVICE_OWNERS].to_vec();
        dup.push("u0".into());
        assert_eq!(check_owners(&dup).unwrap().len(), MAX_DEVICE_OWNERS);
    }
}
