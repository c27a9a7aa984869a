//! Container image references: registry, repository, tag and digest.

use std::fmt;

/// A parsed image reference, normalised the way container runtimes do (`nginx` is
/// `docker.io/library/nginx:latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses an image reference; `None` when it is not a valid reference (the runtime would
    /// report `InvalidImageName`).
    pub fn parse(image: &str) -> Option<Self> {
        if image.is_empty() || image.trim() != image || image.chars().any(char::is_uppercase) {
            return None;
        }
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => {
                let (algorithm, hex) = digest.split_once(':')?;
                if algorithm.is_empty()
                    || hex.len() < 32
                    || !hex.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return None;
                }
                (rest, Some(digest.to_owned()))
            }
            None => (image, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let valid_tag = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                && !tag.starts_with(['.', '-']);
            if !valid_tag {
                return None;
            }
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        let registry = if parts.len() > 1
            && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
        {
            parts.remove(0).to_owned()
        } else {
            "docker.io".to_owned()
        };
        let component_ok = |part: &&str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && !part.starts_with(['.', '_', '-'])
                && !part.ends_with(['.', '_', '-'])
        };
        if parts.is_empty() || !parts.iter().all(component_ok) {
            return None;
        }
        if registry == "docker.io" && parts.len() == 1 {
            parts.insert(0, "library");
        }
        Some(Self {
            registry,
            repository: parts.join("/"),
            tag: tag
                .map(str::to_owned)
                .or_else(|| digest.is_none().then(|| "latest".to_owned())),
            digest,
        })
    }

    /// `registry/repository`, the part that must stay the same when a fix changes an image.
    pub fn full_repository(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.full_repository())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether two image strings name the same repository (tags and digests may differ).
pub fn same_repository(a: &str, b: &str) -> bool {
    match (ImageRef::parse(a), ImageRef::parse(b)) {
        (Some(a), Some(b)) => a.full_repository() == b.full_repository(),
        _ => false,
    }
}

/// Whether replacing image `old` by `new` keeps the repository: `new` must be valid, and name
/// the repository of `old` or, when `old` is invalid, of its nearest valid form.
pub fn keeps_repository(new: &str, old: &str) -> bool {
    same_repository(new, old)
        || (ImageRef::parse(old).is_none()
            && nearest_valid(old).is_some_and(|intended| same_repository(new, &intended)))
}

/// The one valid reference an invalid one was evidently meant to be: surrounding whitespace,
/// a URL scheme, capitals in the repository name, a doubled `:` or a trailing `:` or `/`
/// removed. `None` when the reference is valid already or these corrections do not make it so.
pub fn nearest_valid(image: &str) -> Option<String> {
    if ImageRef::parse(image).is_some() {
        return None;
    }
    let mut text = image.trim().to_owned();
    for scheme in ["https://", "http://", "docker://"] {
        if let Some(rest) = text.strip_prefix(scheme) {
            text = rest.to_owned();
        }
    }
    while text.contains("::") {
        text = text.replace("::", ":");
    }
    let text = text.trim_end_matches([':', '/']);
    // Capitals are invalid only in the repository name; a tag may hold them.
    let (name, suffix) = match text.split_once('@') {
        Some((name, digest)) => (name, format!("@{digest}")),
        None => (text, String::new()),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(colon) => name.split_at(last_slash + colon),
        None => (name, ""),
    };
    let candidate = format!("{}{tag}{suffix}", name.to_ascii_lowercase());
    let valid = ImageRef::parse(&candidate).or_else(|| {
        // A tag with capitals is valid for registries, though not for the parser's check.
        ImageRef::parse(&candidate.to_ascii_lowercase())
    });
    valid.is_some().then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_references_have_one_nearest_valid_form_when_evident() {
        let cases = [
            (
                "gcr.io/acme-web/Frontend:v3",
                Some("gcr.io/acme-web/frontend:v3"),
            ),
            (" nginx:1.25.3\n", Some("nginx:1.25.3")),
            ("https://ghcr.io/acme/api:2", Some("ghcr.io/acme/api:2")),
            ("nginx::1.25", Some("nginx:1.25")),
            ("redis:", Some("redis")),
            ("nginx:1.25", None),
            ("nginx:1.25:3", None),
            ("", None),
        ];
        for (image, expected) in cases {
            assert_eq!(nearest_valid(image).as_deref(), expected, "{image:?}");
        }
        assert!(keeps_repository(
            "gcr.io/acme-web/frontend:v2",
            "gcr.io/acme-web/Frontend:v3"
        ));
        assert!(!keeps_repository(
            "gcr.io/acme-web/backend:v2",
            "gcr.io/acme-web/Frontend:v3"
        ));
        assert!(!keeps_repository("Nginx", "nginx:1.25.3"));
    }

    #[test]
    fn references_normalise_like_the_container_runtime() {
        let cases = [
            ("nginx", Some("docker.io/library/nginx:latest")),
            ("nginx:1.25.3", Some("docker.io/library/nginx:1.25.3")),
            ("bitnami/redis:7", Some("docker.io/bitnami/redis:7")),
            (
                "ghcr.io/aegis-demo/orders-api:2.3.1",
                Some("ghcr.io/aegis-demo/orders-api:2.3.1"),
            ),
            ("localhost:5000/app:dev", Some("localhost:5000/app:dev")),
            ("Nginx:1", None),
            ("nginx::1", None),
            ("nginx:1.25 ", None),
            ("", None),
            ("ghcr.io//x", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                ImageRef::parse(input).map(|i| i.to_string()).as_deref(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn same_repository_ignores_tags_and_default_registry() {
        assert!(same_repository(
            "nginx:1.25.3",
            "docker.io/library/nginx:1.27"
        ));
        assert!(!same_repository(
            "nginx:1.25.3",
            "ghcr.io/evil/nginx:1.25.3"
        ));
        assert!(!same_repository("nginx:1.25.3", "Nginx"));
    }
}
