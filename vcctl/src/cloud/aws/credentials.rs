//! Where the SDK's default chain could take credentials from, told from the environment and
//! `~/.aws` alone: for the step that checks them, and for the message when there are none
//! (which names what was really there, and what was not tried).

use std::path::PathBuf;

/// What vcctl can see of the credential sources, without asking AWS.
pub struct Sources {
    env: Vec<(String, String)>,
    /// Profiles in `~/.aws/config` and `~/.aws/credentials` (or the AWS_* files).
    profiles: Vec<String>,
}

impl Sources {
    pub fn of_this_process() -> Sources {
        let env = std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).collect();
        Sources { env, profiles: profiles() }
    }

    fn var(&self, key: &str) -> Option<&str> {
        self.env.iter().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// Where the chain takes credentials from first.
    pub fn first(&self) -> String {
        if self.var("AWS_ACCESS_KEY_ID").is_some() {
            return "the environment (AWS_ACCESS_KEY_ID)".into();
        }
        if self.var("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
            return "a web identity (AWS_WEB_IDENTITY_TOKEN_FILE)".into();
        }
        if let Some(profile) = self.var("AWS_PROFILE") {
            return format!("profile `{profile}` (AWS_PROFILE)");
        }
        match self.profiles.iter().any(|p| p == "default") {
            true => "profile `default` (~/.aws)".into(),
            false => "no AWS_ACCESS_KEY_ID, no profile".into(),
        }
    }

    /// Why no credentials were found, and what to do: (message, hint).
    pub fn none_found(&self) -> (String, String) {
        let ci = "in GitHub Actions, aws-actions/configure-aws-credentials with role-to-assume; `-v` shows every source tried";
        if let Some(profile) = self.var("AWS_PROFILE") {
            if !self.profiles.iter().any(|p| p == profile) {
                return (
                    format!(
                        "no AWS credentials: AWS_PROFILE names profile `{profile}`, which neither ~/.aws/config nor \
                         ~/.aws/credentials has ({})",
                        self.known_profiles()
                    ),
                    format!(
                        "make it (`aws configure sso --profile {profile}` or `aws configure --profile {profile}`), \
                         or set AWS_PROFILE to one you have"
                    ),
                );
            }
            return (
                format!(
                    "no AWS credentials from profile `{profile}` (AWS_PROFILE): it has none, or its SSO session ended"
                ),
                format!(
                    "`aws sso login --profile {profile}`, or check it with `aws sts get-caller-identity --profile {profile}`; {ci}"
                ),
            );
        }
        let metadata = match self.var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            true => "the instance metadata was not asked (AWS_EC2_METADATA_DISABLED=true)",
            false => "nor did the instance metadata answer",
        };
        let set: Vec<&str> = self.env.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| k.as_str()).collect();
        let environment = match set.is_empty() {
            true => "the environment has no AWS_* variables".to_string(),
            false => format!("the environment has no AWS_ACCESS_KEY_ID (only {})", set.join(", ")),
        };
        (
            format!(
                "no AWS credentials: {environment}; no AWS_PROFILE and no `default` profile ({}); no web identity; \
                 {metadata}",
                self.known_profiles()
            ),
            format!(
                "run `aws configure sso` (then `aws sso login`), or set AWS_PROFILE to a profile you have, or \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; {ci}"
            ),
        )
    }

    fn known_profiles(&self) -> String {
        match self.profiles.is_empty() {
            true => "~/.aws has no profiles".into(),
            false => {
                format!("~/.aws has {}", self.profiles.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// The profiles of `~/.aws/config` (`[default]`, `[profile NAME]`) and `~/.aws/credentials`
/// (`[NAME]`), honouring AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE.
fn profiles() -> Vec<String> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let file = |var: &str, name: &str| std::env::var_os(var).map_or_else(|| home.join(".aws").join(name), Into::into);
    let config = std::fs::read_to_string(file("AWS_CONFIG_FILE", "config")).unwrap_or_default();
    let credentials = std::fs::read_to_string(file("AWS_SHARED_CREDENTIALS_FILE", "credentials")).unwrap_or_default();
    profile_names(&config, &credentials)
}

fn profile_names(config: &str, credentials: &str) -> Vec<String> {
    let section = |l: &str| l.trim().strip_prefix('[')?.strip_suffix(']').map(str::trim).map(str::to_string);
    let mut names: Vec<String> = config
        .lines()
        .filter_map(section)
        .filter_map(|s| if s == "default" { Some(s) } else { s.strip_prefix("profile ").map(|p| p.trim().to_string()) })
        .chain(credentials.lines().filter_map(section))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(env: &[(&str, &str)], profiles: &[&str]) -> Sources {
        Sources {
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            profiles: profiles.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn profiles_come_from_both_files() {
        let names = profile_names("[default]\nregion=x\n[profile prod]\n[sso-session s]\n", "[ci]\n[default]\n");
        assert_eq!(names, ["ci", "default", "prod"]);
    }

    #[test]
    fn a_missing_profile_is_named_as_missing_not_as_found() {
        let (message, hint) = sources(&[("AWS_PROFILE", "prod")], &["default"]).none_found();
        assert!(
            message.contains("AWS_PROFILE names profile `prod`, which neither") && message.contains("`default`"),
            "{message}"
        );
        assert!(hint.contains("aws configure sso --profile prod"), "{hint}");
        let (message, hint) = sources(&[("AWS_PROFILE", "prod")], &["prod"]).none_found();
        assert!(
            message.contains("from profile `prod`") && hint.starts_with("`aws sso login --profile prod`"),
            "{message}"
        );
    }

    #[test]
    fn what_is_set_is_said_and_metadata_only_when_asked() {
        let s = sources(&[("AWS_REGION", "eu-central-1"), ("AWS_EC2_METADATA_DISABLED", "true")], &[]);
        let (message, _) = s.none_found();
        assert!(message.contains("no AWS_ACCESS_KEY_ID (only AWS_REGION, AWS_EC2_METADATA_DISABLED)"), "{message}");
        assert!(message.contains("the instance metadata was not asked (AWS_EC2_METADATA_DISABLED=true)"), "{message}");
        assert!(message.contains("~/.aws has no profiles"), "{message}");
        let (message, _) = sources(&[], &[]).none_found();
        assert!(message.contains("the environment has no AWS_* variables;"), "{message}");
        assert!(message.contains("nor did the instance metadata answer"), "{message}");
        assert_eq!(sources(&[], &["default"]).first(), "profile `default` (~/.aws)");
    }
}
