//! Who owns the files in a spill directory, across processes and containers.
//!
//! A process that opens a spill directory takes an *owner*: a tag, `{pid}_{nonce}` (the nonce
//! random, drawn for each owner), and an exclusive lock (`flock`) on a file `{tag}.owner` in the
//! directory, held until its last engine there closes. Every file the process writes there
//! carries the tag in its name. Another process tells whether the owner of a file lives by trying
//! the same lock: the kernel releases it when its holder dies, whatever pid namespace the holder
//! ran in, so processes in different containers sharing a volume see each other alive (with
//! `/proc/<pid>`, a process of another container looked dead, and two containers' pid 7 looked
//! like one process). An owner file that is gone means its owner closed or was adopted; a tag is
//! never taken again, so a name cannot pass from a dead owner to a live one.
//!
//! A forked child gets owners of its own (its pid differs) and closes the copies of its parent's
//! lock files that it inherited in [`after_fork_child`]; until then the parent's lock also lives
//! in the child, so a parent that dies first is seen dead only once the child has let go.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The suffix of an owner's lock file.
pub(crate) const OWNER: &str = ".owner";
/// ...and of that file before it has its name (see [`take`]).
pub(crate) const UNNAMED: &str = ".owner-new";

/// This process's hold on a spill directory (shared by the engines of the process there).
#[derive(Debug)]
pub(crate) struct Owner {
    tag: String,
    path: PathBuf,
    pid: u32,
    file: Mutex<Option<File>>,
}

impl Owner {
    /// The tag this process's files in the directory carry.
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // A forked child's copy of its parent's owner leaves the parent's file alone.
        if self.pid == std::process::id() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The owners this process holds, by canonical directory.
static HELD: Mutex<Vec<(PathBuf, Weak<Owner>)>> = Mutex::new(Vec::new());

/// This process's owner of `dir`: the one its engines there share, or a new one (a new tag, its
/// lock file created and locked).
pub(crate) fn hold(dir: &Path) -> std::io::Result<Arc<Owner>> {
    let key = fs::canonicalize(dir)?;
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    held.retain(|(_, o)| o.upgrade().is_some_and(|o| o.pid == std::process::id()));
    if let Some(owner) = held.iter().filter(|(d, _)| *d == key).find_map(|(_, o)| o.upgrade()) {
        return Ok(owner);
    }
    let owner = Arc::new(take(dir)?);
    held.push((key, Arc::downgrade(&owner)));
    Ok(owner)
}

/// A new owner of `dir`: its lock file created, locked, then given its name, so that an adopter
/// never finds it unlocked while this process lives. An adopter that removed the unnamed file as
/// a dead process's leftover (in the instant before its lock) costs a try with another tag.
fn take(dir: &Path) -> std::io::Result<Owner> {
    let pid = std::process::id();
    let mut tries = 0;
    loop {
        let tag = format!("{pid}_{:016x}", crate::ids::random_u64());
        let path = dir.join(format!("{tag}{OWNER}"));
        let new = dir.join(format!("{tag}{UNNAMED}"));
        let file = fs::OpenOptions::new().write(true).create_new(true).open(&new)?;
        if let Err(e) = file.lock() {
            // A filesystem without `flock`: no owner, so the engine is not built on it.
            let _ = fs::remove_file(&new);
            return Err(e);
        }
        match fs::rename(&new, &path) {
            Ok(()) => return Ok(Owner { tag, path, pid, file: Mutex::new(Some(file)) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Removes `path`, an owner's lock file before its name (see [`take`]), if nobody holds it: a
/// process died between making it and naming it.
pub(crate) fn remove_if_unheld(path: &Path) {
    if File::open(path).is_ok_and(|f| f.try_lock().is_ok()) {
        let _ = fs::remove_file(path);
    }
}

/// What a file's owner tag says about its writer.
pub(crate) enum Found {
    /// Its owner holds the lock (or cannot be told dead): leave its files alone.
    Live,
    /// Its owner is gone. The lock, when there was a lock file, is held until this is dropped,
    /// so that no other process adopts the same files meanwhile; the file is then removed.
    Dead(Option<DeadOwner>),
}

/// The lock of a dead owner, taken by the process adopting its files.
pub(crate) struct DeadOwner {
    path: PathBuf,
    _file: File,
}

impl Drop for DeadOwner {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether the owner `tag` of files in `dir` lives (see the module's docs).
pub(crate) fn find(dir: &Path, tag: &str) -> Found {
    let path = dir.join(format!("{tag}{OWNER}"));
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Dead(None),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read a spill owner's lock; its files are left alone");
            return Found::Live;
        }
    };
    match file.try_lock() {
        Ok(()) => Found::Dead(Some(DeadOwner { path, _file: file })),
        Err(TryLockError::WouldBlock) => Found::Live,
        Err(TryLockError::Error(e)) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot lock a spill owner's file; its files are left alone");
            Found::Live
        }
    }
}

/// Call after `fork()` in the child: closes its copies of the parent's lock files, so that the
/// parent's files are seen as soon as the parent dies (see `super::fork`).
pub(crate) fn after_fork_child() {
    HELD.clear_poison();
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(PoisonError::into_inner));
    for owner in held.iter().filter_map(|(_, o)| o.upgrade()) {
        owner.file.clear_poison();
        drop(owner.file.lock().unwrap_or_else(PoisonError::into_inner).take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_live_while_held_and_dead_once_its_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let owner = hold(dir.path()).unwrap();
        assert!(Arc::ptr_eq(&owner, &hold(dir.path()).unwrap()), "one owner a directory");
        assert!(owner.tag().starts_with(&format!("{}_", std::process::id())));
        // Another open file description of the lock file is another process's view.
        assert!(matches!(find(dir.path(), owner.tag()), Found::Live));
        let tag = owner.tag().to_owned();
        drop(owner);
        assert!(!dir.path().join(format!("{tag}{OWNER}")).exists(), "a closed owner removes its file");
        assert!(matches!(find(dir.path(), &tag), Found::Dead(None)));
        let again = hold(dir.path()).unwrap();
        assert_ne!(again.tag(), tag, "a tag is never taken again");
    }

    #[test]
    fn a_lock_file_nobody_holds_is_a_dead_owners_and_its_adopter_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("7_00000000deadbeef{OWNER}"));
        File::create(&path).unwrap();
        let Found::Dead(Some(dead)) = find(dir.path(), "7_00000000deadbeef") else { panic!("not dead") };
        assert!(matches!(find(dir.path(), "7_00000000deadbeef"), Found::Live), "held by its adopter meanwhile");
        drop(dead);
        assert!(!path.exists());
    }

    #[test]
    fn an_unnamed_lock_file_goes_only_when_nobody_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = dir.path().join(format!("7_1111111111111111{UNNAMED}"));
        let lock = File::create(&held).unwrap();
        lock.lock().unwrap();
        remove_if_unheld(&held);
        assert!(held.exists(), "a process between making and naming its lock file");
        drop(lock);
        remove_if_unheld(&held);
        assert!(!held.exists(), "a process that died there");
    }
}
