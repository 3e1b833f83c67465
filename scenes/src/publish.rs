//! Model directory versioning and the atomic switch of `--out DIR` to a new build.
//!
//! `DIR` is a symbolic link to an immutable build directory `<parent>/.<name>.builds/<build_id>/`
//! (relative target `.<name>.builds/<build_id>`). A build is written into a staging directory
//! `.<name>.builds/.<build_id>.building-XXXX`, renamed to `<build_id>` when complete, and published
//! by creating a new symlink beside `DIR` and `rename(2)`-ing it over `DIR` — one atomic step, so a
//! reader resolving `DIR` sees either the old build or the new one, never a mix or nothing. The
//! current and the previous build are kept (a server may still be reading the previous one); older
//! builds are deleted, and so are staging directories left by builds whose process died (kill -9).
//!
//! A real directory at `DIR` holding a `manifest.json` (the layout before versioning) is replaced
//! by the symlink (logged as a warning); anything else already at `DIR` that is not a symlink is
//! refused before any work is done.

use crate::store::MANIFEST_FILE;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A fresh build id: `YYYYMMDDTHHMMSSZ-<pid hex>-<random hex>` (UTC), sortable by time.
pub fn new_build_id() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    // Random enough to tell apart two builds started in the same second by the same process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(now.as_nanos(), std::process::id(), std::thread::current().id()), &mut h);
    let r = std::hash::Hasher::finish(&h) as u32 & 0xffff;
    format!("{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z-{:x}-{r:04x}", s / 3600, s / 60 % 60, s % 60, std::process::id())
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// What is at the output path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    Nothing,
    Symlink,
    /// A model directory of the layout before versioning (has manifest.json).
    LegacyDir,
}

fn existing(out: &Path) -> Result<Existing> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Existing::Nothing),
        Err(e) => Err(e).with_context(|| format!("cannot inspect --out {}", out.display())),
        Ok(m) if m.file_type().is_symlink() => Ok(Existing::Symlink),
        Ok(m) if m.is_dir() && out.join(MANIFEST_FILE).is_file() => Ok(Existing::LegacyDir),
        Ok(m) => bail!(
            "--out {}: a {} is already there that is not a model (neither a symlink to a build nor a model directory with {MANIFEST_FILE}); refusing to replace it",
            out.display(),
            if m.is_dir() { "directory" } else { "file" }
        ),
    }
}

/// The output path of a build, checked.
#[derive(Debug, Clone)]
pub struct Target {
    out: PathBuf,
    parent: PathBuf,
    name: String,
    builds: PathBuf,
}

impl Target {
    /// Checks that `out` can be (re)placed: absent, a symlink, or an old-layout model directory.
    pub fn check(out: &Path) -> Result<Target> {
        let name = out
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .with_context(|| format!("--out {}: needs a directory name as its last component", out.display()))?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        existing(out)?;
        let builds = parent.join(format!(".{name}.builds"));
        Ok(Target { out: out.to_path_buf(), parent, name, builds })
    }

    /// The directory holding this output's builds.
    pub fn builds_dir(&self) -> &Path {
        &self.builds
    }

    /// A staging directory for build `id` (removed on drop unless published).
    pub fn staging_dir(&self, id: &str) -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.builds).with_context(|| format!("cannot create {}", self.builds.display()))?;
        tempfile::Builder::new()
            .prefix(&format!(".{id}.building-"))
            .tempdir_in(&self.builds)
            .with_context(|| format!("cannot create a staging directory in {}", self.builds.display()))
    }

    /// Makes the staged build `id` the current one: renames it to `<builds>/<id>`, switches the
    /// symlink at `out` to it atomically, and deletes builds older than the previous one.
    /// Returns the build's directory.
    pub fn publish(&self, staging: tempfile::TempDir, id: &str) -> Result<PathBuf> {
        let final_dir = self.builds.join(id);
        let staged = staging.keep();
        if let Err(e) = std::fs::rename(&staged, &final_dir) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e).with_context(|| format!("cannot move the new build into {}", final_dir.display()));
        }
        let fail = |e: anyhow::Error| {
            let _ = std::fs::remove_dir_all(&final_dir);
            e
        };
        let now = existing(&self.out).map_err(fail)?;
        let previous: Option<String> = match now {
            Existing::Symlink => std::fs::read_link(&self.out)
                .ok()
                .and_then(|t| t.file_name().map(|f| f.to_string_lossy().into_owned())),
            _ => None,
        };
        let link = self.parent.join(format!(".{}.link-{id}", self.name));
        let _ = std::fs::remove_file(&link);
        let rel = Path::new(&format!(".{}.builds", self.name)).join(id);
        std::os::unix::fs::symlink(&rel, &link)
            .with_context(|| format!("cannot create the symlink {}", link.display()))
            .map_err(fail)?;
        match now {
            Existing::LegacyDir => {
                let old = self.parent.join(format!(".{}.old-{}", self.name, std::process::id()));
                std::fs::rename(&self.out, &old)
                    .with_context(|| format!("cannot move the previous model directory at {} aside", self.out.display()))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&link);
                        fail(e)
                    })?;
                if let Err(e) = std::fs::rename(&link, &self.out) {
                    let _ = std::fs::rename(&old, &self.out);
                    let _ = std::fs::remove_file(&link);
                    return Err(fail(anyhow::Error::new(e).context(format!("cannot switch {} to the new build", self.out.display()))));
                }
                let _ = std::fs::remove_dir_all(&old);
                tracing::warn!(
                    out = %self.out.display(),
                    "replaced a model directory of the old (unversioned) layout by a symlink to the versioned build {id}"
                );
            }
            Existing::Nothing | Existing::Symlink => {
                if let Err(e) = std::fs::rename(&link, &self.out) {
                    let _ = std::fs::remove_file(&link);
                    return Err(fail(anyhow::Error::new(e).context(format!("cannot switch {} to the new build", self.out.display()))));
                }
            }
        }
        if let Ok(d) = std::fs::File::open(&self.parent) {
            let _ = d.sync_all();
        }
        self.prune(id, previous.as_deref());
        Ok(final_dir)
    }

    /// Deletes every finished build except `current` and `previous`, and the staging directories
    /// of builds that died (killed, power loss): `.<build_id>.building-*` whose build process (the
    /// pid in the build id) no longer runs. Staging directories of running builds are left alone.
    fn prune(&self, current: &str, previous: Option<&str>) {
        let Ok(rd) = std::fs::read_dir(&self.builds) else { return };
        let mut removed = 0;
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = n.strip_prefix('.').and_then(|r| r.split_once(".building-")).map(|(id, _)| id) {
                if staging_owner_gone(id) {
                    match std::fs::remove_dir_all(e.path()) {
                        Ok(()) => tracing::warn!(staging = %e.path().display(), "deleted the staging directory of a build that did not finish (its process is gone)"),
                        Err(err) => tracing::warn!(staging = %e.path().display(), "cannot delete the staging directory of a dead build: {err}"),
                    }
                }
                continue;
            }
            if n.starts_with('.') || n == current || Some(n.as_str()) == previous {
                continue;
            }
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => removed += 1,
                Err(err) => tracing::warn!(build = %e.path().display(), "cannot delete an old build: {err}"),
            }
        }
        if removed > 0 {
            tracing::info!(builds = %self.builds.display(), removed, "deleted old builds (kept the current and the previous)");
        }
    }
}

/// True when the process that wrote build `id` (`…Z-<pid hex>-<rand>`) is not running on this
/// machine (Linux: no `/proc/<pid>`). Unknown id shapes and other systems: false (kept).
fn staging_owner_gone(id: &str) -> bool {
    let mut parts = id.split('-');
    let (Some(_), Some(pid), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return false };
    let Ok(pid) = u32::from_str_radix(pid, 16) else { return false };
    if pid == std::process::id() || !Path::new("/proc/self").exists() {
        return false;
    }
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2000-03-01 is day 11017; 2026-11-22 is day 20779 (date -d 2026-11-22 +%s / 86400).
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
    }

    fn stage(t: &Target, id: &str, content: &str) -> PathBuf {
        let s = t.staging_dir(id).unwrap();
        std::fs::write(s.path().join(MANIFEST_FILE), content).unwrap();
        t.publish(s, id).unwrap()
    }

    #[test]
    fn publish_switches_the_symlink_and_keeps_two_builds() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("m");
        let t = Target::check(&out).unwrap();
        for (i, id) in ["b1", "b2", "b3"].iter().enumerate() {
            stage(&t, id, &format!("{i}"));
            assert!(std::fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
            assert_eq!(std::fs::read_to_string(out.join(MANIFEST_FILE)).unwrap(), format!("{i}"));
            assert_eq!(std::fs::read_link(&out).unwrap(), Path::new(".m.builds").join(id));
        }
        let mut left: Vec<String> =
            std::fs::read_dir(t.builds_dir()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, ["b2", "b3"]);
        // No link or staging leftovers beside DIR.
        let names: Vec<String> =
            std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn legacy_directory_is_replaced_and_other_things_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("legacy");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join(MANIFEST_FILE), "old").unwrap();
        let t = Target::check(&out).unwrap();
        stage(&t, "b1", "new");
        assert!(std::fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(out.join(MANIFEST_FILE)).unwrap(), "new");

        let plain = tmp.path().join("photos");
        std::fs::create_dir(&plain).unwrap();
        std::fs::write(plain.join("a.jpg"), "x").unwrap();
        let e = Target::check(&plain).unwrap_err().to_string();
        assert!(e.contains("photos") && e.contains("refusing"), "{e}");
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = Target::check(&file).unwrap_err().to_string();
        assert!(e.contains("a file is already there"), "{e}");
        assert!(plain.join("a.jpg").exists() && file.exists());
    }
}
