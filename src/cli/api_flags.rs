//! Nomad's general CLI options for reaching an agent (`-address`, `-token`, `-region`):
//! a flag wins over its environment variable (`NOMAD_ADDR`, `NOMAD_TOKEN`, `NOMAD_REGION`).

use clap::Args;

use super::api_client::{ApiClient, ApiError};

/// The general options a command flattens into its own.
#[derive(Debug, Clone, Default, Args)]
pub struct ApiFlags {
    /// The address of the agent (overrides NOMAD_ADDR).
    #[arg(long)]
    pub address: Option<String>,
    /// The ACL token sent with requests (overrides NOMAD_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// The region of the servers to talk to (overrides NOMAD_REGION).
    #[arg(long)]
    pub region: Option<String>,
}

impl ApiFlags {
    /// A client from these flags, falling back to the process environment.
    pub fn client(&self) -> Result<ApiClient, ApiError> {
        self.client_with(|key| std::env::var(key).ok())
    }

    /// A client from these flags, falling back to `env`.
    pub fn client_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<ApiClient, ApiError> {
        ApiClient::from_lookup(|key| {
            let flag = match key {
                "NOMAD_ADDR" => self.address.clone(),
                "NOMAD_TOKEN" => self.token.clone(),
                "NOMAD_REGION" => self.region.clone(),
                _ => None,
            };
            flag.or_else(|| env(key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_environment() {
        let env = |key: &str| match key {
            "NOMAD_ADDR" => Some("10.0.0.1:4646".to_string()),
            "NOMAD_TOKEN" => Some("from-env".to_string()),
            _ => None,
        };
        let none = ApiFlags::default().client_with(env).unwrap();
        assert_eq!(none.base_url().as_str(), "http://10.0.0.1:4646/");
        assert_eq!(none.token(), Some("from-env"));
        let flags = ApiFlags {
            address: Some("http://10.0.0.2:5646".into()),
            token: Some("from-flag".into()),
            region: None,
        };
        let c = flags.client_with(env).unwrap();
        assert_eq!(c.base_url().as_str(), "http://10.0.0.2:5646/");
        assert_eq!(c.token(), Some("from-flag"));
    }
}
