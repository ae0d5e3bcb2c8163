//! Small field validators shared by the entities. Each returns `Invalid` naming the
//! JSON path it was given, so the caller only supplies the path.

use std::collections::BTreeMap;

use crate::{Error, Result};

pub(crate) const MAX_NAME: usize = 100;
pub(crate) const MAX_DESCRIPTION: usize = 1000;
pub(crate) const MAX_TAGS: usize = 50;

/// A display name: trimmed, non-empty, bounded; returns the trimmed form.
pub(crate) fn name(field: &str, value: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(Error::invalid(field, format!("must be at most {MAX_NAME} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_string())
}

pub(crate) fn description(field: &str, value: &str) -> Result<()> {
    if value.chars().count() > MAX_DESCRIPTION {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

/// Arca tags (our metadata, not Kubernetes labels): bounded count and sizes.
pub(crate) fn tags(field: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(field, format!("at most {MAX_TAGS} tags")));
    }
    for (key, value) in tags {
        if key.is_empty() || key.len() > 128 || key.chars().any(char::is_control) {
            return Err(Error::invalid(
                format!("{field}.{key}"),
                "tag keys are 1 to 128 printable characters",
            ));
        }
        if value.len() > 256 || value.chars().any(char::is_control) {
            return Err(Error::invalid(
                format!("{field}.{key}"),
                "tag values are at most 256 printable characters",
            ));
        }
    }
    Ok(())
}

/// A Kubernetes DNS-1123 label: namespaces, and most object names we refer to.
pub(crate) fn dns_label(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{value:?} is not a valid Kubernetes name (DNS-1123 label)"),
        ))
    }
}

/// A DNS-1123 subdomain: storage class names, label-key prefixes.
pub(crate) fn dns_subdomain(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty() && value.len() <= 253 && value.split('.').all(|part| dns_label(field, part).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{value:?} is not a valid Kubernetes name (DNS-1123 subdomain)"),
        ))
    }
}

fn label_name_ok(name: &str, allow_empty: bool) -> bool {
    if name.is_empty() {
        return allow_empty;
    }
    let bytes = name.as_bytes();
    name.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Kubernetes label selector terms (`key=value`, ANDed): Kubernetes' own syntax rules.
pub(crate) fn labels(field: &str, labels: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in labels {
        let path = format!("{field}.{key}");
        let (prefix, name) = match key.rsplit_once('/') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, key.as_str()),
        };
        if let Some(prefix) = prefix {
            dns_subdomain(&path, prefix)?;
        }
        if !label_name_ok(name, false) {
            return Err(Error::invalid(path, format!("{key:?} is not a valid label key")));
        }
        if !label_name_ok(value, true) {
            return Err(Error::invalid(path, format!("{value:?} is not a valid label value")));
        }
    }
    Ok(())
}

/// A Kubernetes resource kind or `resource.group` as given to include/exclude lists.
pub(crate) fn resource_kind(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("{value:?} is not a resource kind")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  prod  ").unwrap(), "prod");
        assert!(name("name", "   ").is_err());
        assert!(name("name", &"x".repeat(101)).is_err());
    }

    #[test]
    fn kubernetes_names_and_labels_follow_kubernetes() {
        assert!(dns_label("n", "kube-system").is_ok());
        assert!(dns_label("n", "Kube").is_err());
        assert!(dns_label("n", "-a").is_err());
        let ok = BTreeMap::from([("app.kubernetes.io/name".to_string(), "web".to_string())]);
        assert!(labels("labels", &ok).is_ok());
        let bad = BTreeMap::from([("app".to_string(), "has space".to_string())]);
        let err = labels("selection.labels", &bad).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "selection.labels.app"),
            "{err:?}"
        );
    }
}
