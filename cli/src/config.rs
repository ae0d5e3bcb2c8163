//! Where the CLI finds its API URL and key: flags, then the environment (both through
//! clap), then the file `arca login` writes (`$XDG_CONFIG_HOME/arca/config.json`, or
//! `--config` / `ARCA_CONFIG`). The file holds a credential, so it is written 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The URL used when nothing says otherwise: where `arca server` listens by default.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

// Hand-written so that no `{:?}` of the config can ever show the key.
impl std::fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConfig")
            .field("api_url", &self.api_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The config file's path: the explicit one, else the per-user config directory.
pub fn path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let dir = dirs::config_dir().context("no per-user config directory (set HOME, or pass --config)")?;
    Ok(dir.join("arca").join("config.json"))
}

/// Reads the file; a missing file is an empty config (not logged in yet).
pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the file readable by its owner only: a temp file created 0600 next to it,
/// then renamed over it, so the key is never briefly world-readable and a crash never
/// leaves half a file.
pub fn save(path: &Path, config: &FileConfig) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let Some(name) = path.file_name() else {
        bail!("{} is not a file path", path.display());
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let json = serde_json::to_vec_pretty(config)?;
    write_private(&tmp, &json)?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Creates (or truncates) `path` with mode 0600 and writes `bytes`; used for every file
/// holding a credential (the config, an agent manifest).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // The mode of `open` applies only to a new file: tighten an existing one too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", path.display()))?;
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saved_config_round_trips_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("config.json");
        assert_eq!(load(&p).unwrap(), FileConfig::default(), "missing file = empty");
        let c = FileConfig {
            api_url: Some("http://x".into()),
            api_key: Some("arca_secret".into()),
        };
        save(&p, &c).unwrap();
        assert_eq!(load(&p).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(!format!("{c:?}").contains("arca_secret"), "Debug never shows the key");
    }
}
