//! Crash-safe writes: a whole directory swapped into place at once, and a private (0600) file
//! that is never visible half-written or with a looser mode.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{RenameFlags, renameat2};

use super::{OUTPUTS, RenderError};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RenderError + '_ {
    move |source| RenderError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Removes a temporary path on drop unless disarmed (so an error leaves nothing behind).
struct Cleanup {
    path: Option<PathBuf>,
    dir: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort: the original error is what the caller reports.
            let _ = if self.dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// `path` split into its parent directory (`.` for a bare name) and final component.
fn split(path: &Path) -> Result<(PathBuf, String), RenderError> {
    let name =
        path.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| RenderError::NotADirectory {
                path: path.to_owned(),
            })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_owned()))
}

/// A fresh name beside `name`, unique per process and call.
fn temp_name(name: &str) -> String {
    format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}

/// Fails unless `dir` holds only what `alisay render` writes (or nothing).
fn check_replaceable(dir: &Path) -> Result<(), RenderError> {
    let mut known_dirs: Vec<&str> = OUTPUTS
        .iter()
        .filter_map(|(rel, _)| Path::new(rel).parent()?.to_str())
        .collect();
    known_dirs.dedup();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ty = entry.file_type().map_err(io(&entry.path()))?;
        if !(ty.is_dir() && known_dirs.contains(&name.as_ref())) {
            return Err(RenderError::ForeignContent {
                path: dir.to_owned(),
                entry: PathBuf::from(name.as_ref()),
            });
        }
        for inner in fs::read_dir(entry.path()).map_err(io(&entry.path()))? {
            let inner = inner.map_err(io(&entry.path()))?;
            let rel = format!("{name}/{}", inner.file_name().to_string_lossy());
            let is_file = inner.file_type().map_err(io(&inner.path()))?.is_file();
            if !(is_file && OUTPUTS.iter().any(|(out, _)| *out == rel)) {
                return Err(RenderError::ForeignContent {
                    path: dir.to_owned(),
                    entry: PathBuf::from(rel),
                });
            }
        }
    }
    Ok(())
}

/// Writes `files` (`(relative path, text)`) as a new tree and swaps it into `out`.
pub(super) fn replace_dir(out: &Path, files: &[(&str, &str)]) -> Result<(), RenderError> {
    let exists = match fs::symlink_metadata(out) {
        Ok(meta) if meta.is_dir() => {
            check_replaceable(out)?;
            true
        }
        Ok(_) => {
            return Err(RenderError::NotADirectory {
                path: out.to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(out)(e)),
    };
    let (parent, name) = split(out)?;
    let tmp_name = temp_name(&name);
    let tmp = parent.join(&tmp_name);
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o755);
    builder.create(&tmp).map_err(io(&tmp))?;
    let mut cleanup = Cleanup {
        path: Some(tmp.clone()),
        dir: true,
    };
    // The mode given to mkdir is filtered by the umask: set it exactly, for determinism.
    set_mode(&tmp, 0o755)?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (rel, text) in files {
        let path = tmp.join(rel);
        if let Some(dir) = path.parent()
            && !dirs.iter().any(|d| d == dir)
            && dir != tmp
        {
            builder.create(dir).map_err(io(dir))?;
            set_mode(dir, 0o755)?;
            dirs.push(dir.to_owned());
        }
        write_new(&path, text.as_bytes(), 0o644)?;
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }
    sync_dir(&tmp)?;

    let parent_dir = File::open(&parent).map_err(io(&parent))?;
    if exists {
        // Atomic swap: `out` becomes the new tree, the temporary name holds the old one.
        let swapped = renameat2(
            &parent_dir,
            tmp_name.as_str(),
            &parent_dir,
            name.as_str(),
            RenameFlags::RENAME_EXCHANGE,
        );
        match swapped {
            Ok(()) => {}
            // A filesystem without RENAME_EXCHANGE: move the old tree aside, then the new one
            // in. Not atomic (a reader may briefly find no `out`), but never a mixed tree.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {
                let old = parent.join(temp_name(&name));
                fs::rename(out, &old).map_err(io(out))?;
                fs::rename(&tmp, out).map_err(io(out))?;
                cleanup.path = Some(old);
            }
            Err(e) => return Err(io(out)(std::io::Error::from(e))),
        }
    } else {
        renameat2(
            &parent_dir,
            tmp_name.as_str(),
            &parent_dir,
            name.as_str(),
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(|e| io(out)(std::io::Error::from(e)))?;
        cleanup.path = None;
    }
    parent_dir.sync_all().map_err(io(&parent))?;
    // With an exchange, `cleanup` now removes the old tree.
    drop(cleanup);
    Ok(())
}

/// Writes `bytes` to `out` through a temporary file created with `mode` 0600 (exclusive
/// create, so the mode holds from the first byte), fsynced, then renamed over `out`.
pub(super) fn write_private_file(out: &Path, bytes: &[u8]) -> Result<(), RenderError> {
    let (parent, name) = split(out)?;
    let tmp = parent.join(temp_name(&name));
    let mut cleanup = Cleanup {
        path: Some(tmp.clone()),
        dir: false,
    };
    write_new(&tmp, bytes, 0o600)?;
    fs::rename(&tmp, out).map_err(io(out))?;
    cleanup.path = None;
    sync_dir(&parent)
}

/// Creates `path` (which must not exist) with `mode` (set at creation, then exactly, whatever
/// the umask), writes `bytes` and fsyncs.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RenderError> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RenderError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), RenderError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
