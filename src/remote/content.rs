//! What an upload sends: one opened local file, read with bounded memory.
//!
//! A small file is read whole when it is opened (one read, one request); a large one is
//! read block by block from the same descriptor while it uploads, so memory does not grow
//! with file size. Every byte held for an upload — a small file's content or a block in
//! flight — holds a share of one [`MemoryBudget`], so memory does not grow with the number
//! of large files in flight either.
//!
//! The file is opened once, without following symlinks, and checked to be a regular file
//! on that descriptor; every read and the "did it change meanwhile" check use the same
//! descriptor, so a file swapped for a symlink mid-upload cannot send the link's target.

use crate::fsutil::Beneath;
use bytes::Bytes;
use md5::{Digest, Md5};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Files up to this size go in one request (Put Blob); larger ones are uploaded in blocks
/// of this size (Put Block + Put Block List).
pub const BLOCK_SIZE: u64 = 4 * 1024 * 1024;

/// Files up to this size are opened and read on the async task itself.
const INLINE_READ_MAX: u64 = 256 * 1024;

/// Bytes all uploads of one process may hold in memory at once.
pub const DEFAULT_MEMORY_BUDGET: u64 = 32 * 1024 * 1024;

/// Memory for upload buffers, shared by every upload of a run, counted in KiB.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> Self {
        let total_kib = (bytes / 1024).clamp(1, u32::MAX as u64) as u32;
        MemoryBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Wait until `bytes` may be held; released when the permit is dropped. A request
    /// larger than the whole budget takes the whole budget.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let kib = bytes.div_ceil(1024).clamp(1, self.total_kib as u64) as u32;
        // The semaphore is never closed, so acquiring cannot fail; if it ever did, running
        // without the reservation is better than failing the upload.
        Reservation(self.kib.clone().acquire_many_owned(kib).await.ok())
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget::new(DEFAULT_MEMORY_BUDGET)
    }
}

/// A share of the memory budget, given back on drop.
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Reservation {
    /// Give back all of this share but `bytes`.
    fn keep(&mut self, bytes: u64) {
        if let Some(permit) = self.0.as_mut() {
            let keep = bytes.div_ceil(1024).max(1) as usize;
            if permit.num_permits() > keep {
                drop(permit.split(permit.num_permits() - keep));
            }
        }
    }
}

/// What identifies a file's content at one moment: if any of these moved, it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
        }
    }
}

/// Why a local file cannot be opened for upload.
#[derive(Debug)]
pub enum OpenError {
    /// Not there any more, or no longer a regular file (a symlink, a directory, a FIFO):
    /// not a candidate now, and not a failure.
    Gone,
    Io(std::io::Error),
}

/// How the bytes stored differ from the file's: an encryption applied as the file is read,
/// block by block, so a large file still never sits in memory whole.
pub trait Transform: Send + Sync {
    /// Bytes stored for a file of `len` bytes.
    fn stored_len(&self, len: u64) -> u64;
    /// The bytes stored for the whole of a file read at once.
    fn whole(&self, plain: &[u8]) -> Vec<u8>;
    /// The bytes stored for block `index` of a file read in blocks of [`BLOCK_SIZE`]
    /// (`last`: the block that ends the file).
    fn block(&self, index: u32, plain: &[u8], last: bool) -> Vec<u8>;
}

/// One local file opened for upload. Clones share the descriptor, the bytes and the MD5.
#[derive(Clone)]
pub struct Content {
    /// `None` for in-memory content.
    file: Option<Arc<File>>,
    /// The stat of the descriptor when it was opened.
    pub stamp: FileStamp,
    /// The whole content, for files up to [`BLOCK_SIZE`], read at open.
    inline: Option<Bytes>,
    /// MD5 of the content, once something has read all of it.
    md5: Arc<Mutex<Option<[u8; 16]>>>,
    budget: MemoryBudget,
    _inline_reservation: Option<Arc<Reservation>>,
    /// What is sent is the file transformed (encrypted): `inline` and the blocks hold the
    /// transformed bytes and `md5` is theirs, while the file's own MD5 goes to
    /// `plain_md5`, the cell of the content this view was made from.
    transform: Option<Arc<dyn Transform>>,
    plain_md5: Option<Arc<Mutex<Option<[u8; 16]>>>>,
}

impl Content {
    /// Open `rel` below `root` for upload: no symlink followed at any component, no FIFO
    /// waited on, regular files only. Small files are read (and hashed) now, holding their
    /// size of `budget`.
    ///
    /// `expected_size` is the size the scan saw: a small file is opened and read right on
    /// the calling task (microseconds, cheaper than two hand-overs to the blocking pool, and
    /// most journal files are small); larger ones are opened and read on the blocking pool.
    pub async fn open(
        root: &Arc<Beneath>,
        rel: &str,
        budget: &MemoryBudget,
        expected_size: u64,
    ) -> Result<Content, OpenError> {
        let (file, stamp) = if expected_size <= INLINE_READ_MAX {
            open_regular(root, rel)?
        } else {
            let (root, rel_owned) = (root.clone(), rel.to_string());
            blocking(move || open_regular(&root, &rel_owned)).await?
        };
        let file = Arc::new(file);
        let mut content = Content {
            file: Some(file.clone()),
            stamp,
            inline: None,
            md5: Arc::new(Mutex::new(None)),
            budget: budget.clone(),
            _inline_reservation: None,
            transform: None,
            plain_md5: None,
        };
        if stamp.size <= BLOCK_SIZE {
            let reservation = budget.reserve(stamp.size).await;
            let size = stamp.size;
            let data = if size <= INLINE_READ_MAX {
                read_all(&file, size)?
            } else {
                blocking(move || read_all(&file, size)).await?
            };
            let md5: [u8; 16] = Md5::digest(&data).into();
            content.inline = Some(Bytes::from(data));
            content.set_md5(md5);
            content._inline_reservation = Some(Arc::new(reservation));
        }
        Ok(content)
    }

    /// An in-memory content (tests and remotes' own checks).
    pub fn from_bytes(data: Bytes) -> Content {
        let md5: [u8; 16] = Md5::digest(&data).into();
        Content {
            stamp: FileStamp {
                dev: 0,
                ino: 0,
                size: data.len() as u64,
                mtime_ns: 0,
                ctime_ns: 0,
            },
            file: None,
            inline: Some(data),
            md5: Arc::new(Mutex::new(Some(md5))),
            budget: MemoryBudget::default(),
            _inline_reservation: None,
            transform: None,
            plain_md5: None,
        }
    }

    /// The same file as `transform` stores it: what a remote reads from the view is the
    /// transformed bytes (and their MD5); reading it whole also gives this content its own
    /// MD5. A small file is transformed now.
    pub fn transformed(&self, transform: Arc<dyn Transform>) -> Content {
        let inline = self
            .inline
            .as_ref()
            .map(|plain| Bytes::from(transform.whole(plain)));
        let md5 = inline.as_ref().map(|stored| Md5::digest(stored).into());
        Content {
            file: self.file.clone(),
            stamp: self.stamp,
            inline,
            md5: Arc::new(Mutex::new(md5)),
            budget: self.budget.clone(),
            _inline_reservation: self._inline_reservation.clone(),
            transform: Some(transform),
            plain_md5: Some(self.md5.clone()),
        }
    }

    /// Bytes a remote stores for this content.
    pub fn size(&self) -> u64 {
        match (&self.inline, &self.transform) {
            (Some(stored), Some(_)) => stored.len() as u64,
            (None, Some(transform)) => transform.stored_len(self.stamp.size),
            _ => self.stamp.size,
        }
    }

    fn file(&self) -> Result<&Arc<File>, ContentError> {
        self.file.as_ref().ok_or_else(|| {
            ContentError::Read(std::io::Error::other("in-memory content has no file"))
        })
    }

    /// The whole content, when the file is small enough to be sent in one request.
    pub fn inline(&self) -> Option<&Bytes> {
        self.inline.as_ref()
    }

    /// The MD5 of the content, if known yet (small files at open; large ones once a
    /// remote has read them whole).
    pub fn known_md5(&self) -> Option<[u8; 16]> {
        self.md5.lock().ok().and_then(|m| *m)
    }

    /// Remember the MD5 a remote computed over the whole content it sent.
    pub fn set_md5(&self, md5: [u8; 16]) {
        if let Ok(mut m) = self.md5.lock() {
            *m = Some(md5);
        }
    }

    /// The MD5 of the content, reading the file once more if nothing has yet. Fails with
    /// [`ContentError::Changed`] if the file changed since it was opened.
    pub async fn md5(&self) -> Result<[u8; 16], ContentError> {
        if let Some(md5) = self.known_md5() {
            return Ok(md5);
        }
        let mut reader = self.blocks(BLOCK_SIZE);
        while let Some(block) = reader.next_block().await? {
            drop(block);
        }
        reader.finish()
    }

    /// Read the content in order, `block_size` bytes at a time.
    pub fn blocks(&self, block_size: u64) -> BlockReader<'_> {
        BlockReader {
            content: self,
            block_size,
            offset: 0,
            index: 0,
            hasher: Md5::new(),
            plain_hasher: Md5::new(),
            hashers_away: false,
        }
    }

    /// Copy the content into `out`, hashing it; used by the directory remote.
    pub fn copy_to(&self, out: &mut impl std::io::Write) -> Result<[u8; 16], ContentError> {
        if let Some(data) = &self.inline {
            out.write_all(data).map_err(ContentError::Write)?;
            return self.known_md5().ok_or(ContentError::Changed);
        }
        let file = self.file()?;
        if let Some(transform) = &self.transform {
            return self.copy_transformed_to(file, transform.as_ref(), out);
        }
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut offset = 0u64;
        while offset < self.stamp.size {
            let want = (self.stamp.size - offset).min(buf.len() as u64) as usize;
            let n = file
                .read_at(&mut buf[..want], offset)
                .map_err(ContentError::Read)?;
            if n == 0 {
                return Err(ContentError::Changed); // truncated meanwhile
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(ContentError::Write)?;
            offset += n as u64;
        }
        self.check_unchanged()?;
        let md5: [u8; 16] = hasher.finalize().into();
        self.set_md5(md5);
        Ok(md5)
    }

    /// [`Content::copy_to`] for a transformed view of a large file: block by block.
    fn copy_transformed_to(
        &self,
        file: &File,
        transform: &dyn Transform,
        out: &mut impl std::io::Write,
    ) -> Result<[u8; 16], ContentError> {
        let (mut stored_hasher, mut plain_hasher) = (Md5::new(), Md5::new());
        let size = self.stamp.size;
        let mut buf = vec![0u8; BLOCK_SIZE as usize];
        let (mut offset, mut index) = (0u64, 0u32);
        loop {
            let len = (size - offset).min(BLOCK_SIZE) as usize;
            match file.read_exact_at(&mut buf[..len], offset) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(ContentError::Changed);
                }
                Err(e) => return Err(ContentError::Read(e)),
            }
            offset += len as u64;
            plain_hasher.update(&buf[..len]);
            let stored = transform.block(index, &buf[..len], offset >= size);
            stored_hasher.update(&stored);
            out.write_all(&stored).map_err(ContentError::Write)?;
            index += 1;
            if offset >= size {
                break;
            }
        }
        self.check_unchanged()?;
        self.set_plain_md5(plain_hasher.finalize().into());
        let md5: [u8; 16] = stored_hasher.finalize().into();
        self.set_md5(md5);
        Ok(md5)
    }

    /// Give the content this view was made from its MD5 (the file's own).
    fn set_plain_md5(&self, md5: [u8; 16]) {
        if let Some(Ok(mut m)) = self.plain_md5.as_ref().map(|m| m.lock()) {
            *m = Some(md5);
        }
    }

    /// Whether the file still has the stat it had when it was opened (same descriptor).
    pub fn check_unchanged(&self) -> Result<(), ContentError> {
        if self.inline.is_some() {
            return Ok(()); // what is sent was read whole at open
        }
        let now = self.file()?.metadata().map_err(ContentError::Read)?;
        if FileStamp::of(&now) == self.stamp {
            Ok(())
        } else {
            Err(ContentError::Changed)
        }
    }

    /// Whether the path still names the opened file, unchanged (after the upload).
    pub fn still_at(&self, path: &Path) -> bool {
        let Some(Ok(fd_now)) = self.file.as_ref().map(|f| f.metadata()) else {
            return false;
        };
        let Ok(path_now) = std::fs::symlink_metadata(path) else {
            return false;
        };
        let fd_now = FileStamp::of(&fd_now);
        fd_now == self.stamp && FileStamp::of(&path_now) == self.stamp
    }
}

/// A failure while reading the content for an upload.
#[derive(Debug)]
pub enum ContentError {
    /// The file changed while it was read: what was read is not a consistent copy.
    Changed,
    Read(std::io::Error),
    /// Writing the copy (directory remote).
    Write(std::io::Error),
}

impl std::fmt::Display for ContentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentError::Changed => write!(f, "the file changed while it was uploaded"),
            ContentError::Read(e) => write!(f, "cannot read the local file: {e}"),
            ContentError::Write(e) => write!(f, "cannot write: {e}"),
        }
    }
}

/// One block of a large file, holding its share of the memory budget.
pub struct Block {
    pub index: u32,
    pub data: Bytes,
    pub md5: [u8; 16],
    _reservation: Reservation,
}

/// Reads a content's blocks in order, hashing the whole as it goes.
pub struct BlockReader<'a> {
    content: &'a Content,
    block_size: u64,
    offset: u64,
    index: u32,
    /// Over what is sent (the transformed bytes, for a transformed view).
    hasher: Md5,
    /// Over the file's own bytes (a transformed view's).
    plain_hasher: Md5,
    /// The hashers are with a block being read (a dropped read never gives them back).
    hashers_away: bool,
}

/// One block read from the file, transformed and hashed, on the blocking pool.
struct BlockWork {
    file: Arc<File>,
    offset: u64,
    len: usize,
    index: u32,
    last: bool,
    transform: Option<Arc<dyn Transform>>,
    hasher: Md5,
    plain_hasher: Md5,
}

/// A [`BlockWork`] done: the bytes to send, their MD5, the hashers moved on.
struct BlockDone {
    data: Bytes,
    md5: [u8; 16],
    hasher: Md5,
    plain_hasher: Md5,
}

impl BlockWork {
    fn run(mut self) -> Result<BlockDone, ContentError> {
        let mut buf = vec![0u8; self.len];
        match self.file.read_exact_at(&mut buf, self.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(ContentError::Changed);
            }
            Err(e) => return Err(ContentError::Read(e)),
        }
        let data = match &self.transform {
            Some(transform) => {
                self.plain_hasher.update(&buf);
                let stored = transform.block(self.index, &buf, self.last);
                drop(buf); // the plaintext's memory goes now
                stored
            }
            None => buf,
        };
        self.hasher.update(&data);
        let md5: [u8; 16] = Md5::digest(&data).into();
        Ok(BlockDone {
            data: Bytes::from(data),
            md5,
            hasher: self.hasher,
            plain_hasher: self.plain_hasher,
        })
    }
}

impl BlockReader<'_> {
    /// The next block, or `None` after the last one.
    pub async fn next_block(&mut self) -> Result<Option<Block>, ContentError> {
        // What is read whole at open is what is sent; otherwise blocks come from the file.
        let size = match &self.content.inline {
            Some(all) => all.len() as u64,
            None => self.content.stamp.size,
        };
        if self.offset >= size && !(size == 0 && self.index == 0) {
            return Ok(None);
        }
        let len = (size - self.offset).min(self.block_size);
        // A block being transformed is held twice for a while, as read and as stored: both
        // count (taken at once: a file holding one share while it waits for another could
        // wait for ever).
        let transforming = self.content.transform.is_some() && self.content.inline.is_none();
        let mut reservation = self
            .content
            .budget
            .reserve(if transforming { 2 * len } else { len })
            .await;
        let (data, md5) = match &self.content.inline {
            Some(all) => {
                let data = all.slice(self.offset as usize..(self.offset + len) as usize);
                self.hasher.update(&data);
                let md5: [u8; 16] = Md5::digest(&data).into();
                (data, md5)
            }
            None => {
                // Read, transformed and hashed on the blocking pool, off the thread that
                // drives the requests: the file's running hashers go along and come back.
                // A call dropped meanwhile leaves them gone, and the reader refuses to go on
                // rather than give a wrong MD5.
                if self.hashers_away {
                    return Err(ContentError::Changed);
                }
                let work = BlockWork {
                    file: self.content.file()?.clone(),
                    offset: self.offset,
                    len: len as usize,
                    index: self.index,
                    last: self.offset + len >= size,
                    transform: self.content.transform.clone(),
                    hasher: std::mem::take(&mut self.hasher),
                    plain_hasher: std::mem::take(&mut self.plain_hasher),
                };
                self.hashers_away = true;
                let done = tokio::task::spawn_blocking(move || work.run())
                    .await
                    .map_err(|e| ContentError::Read(std::io::Error::other(e)))??;
                self.hasher = done.hasher;
                self.plain_hasher = done.plain_hasher;
                self.hashers_away = false;
                if transforming {
                    reservation.keep(done.data.len() as u64);
                }
                (done.data, done.md5)
            }
        };
        let block = Block {
            index: self.index,
            data,
            md5,
            _reservation: reservation,
        };
        self.offset += len;
        self.index += 1;
        if size == 0 {
            self.offset = 1; // the one empty block is done
        }
        Ok(Some(block))
    }

    /// The MD5 of everything read, after checking that the file did not change meanwhile.
    pub fn finish(self) -> Result<[u8; 16], ContentError> {
        if self.hashers_away {
            return Err(ContentError::Changed);
        }
        self.content.check_unchanged()?;
        if self.content.transform.is_some() && self.content.inline.is_none() {
            self.content
                .set_plain_md5(self.plain_hasher.finalize().into());
        }
        let md5: [u8; 16] = self.hasher.finalize().into();
        self.content.set_md5(md5);
        Ok(md5)
    }
}

fn open_regular(root: &Beneath, rel: &str) -> Result<(File, FileStamp), OpenError> {
    let file = root.open_file(rel).map_err(|e| {
        if crate::fsutil::is_gone(&e) {
            OpenError::Gone
        } else {
            OpenError::Io(e)
        }
    })?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    Ok((file, FileStamp::of(&meta)))
}

fn read_all(file: &File, size: u64) -> Result<Vec<u8>, OpenError> {
    let mut data = vec![0u8; size as usize];
    let mut done = 0;
    while done < data.len() {
        match file.read_at(&mut data[done..], done as u64) {
            Ok(0) => break, // truncated meanwhile: send what is there, the stat check notices
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OpenError::Io(e)),
        }
    }
    data.truncate(done);
    Ok(data)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpenError> + Send + 'static,
) -> Result<T, OpenError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpenError::Io(std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Stores the file as is, slowly: a read of a block can be dropped while it transforms.
    struct SlowCopy;

    impl Transform for SlowCopy {
        fn stored_len(&self, len: u64) -> u64 {
            len
        }
        fn whole(&self, plain: &[u8]) -> Vec<u8> {
            plain.to_vec()
        }
        fn block(&self, _index: u32, plain: &[u8], _last: bool) -> Vec<u8> {
            std::thread::sleep(Duration::from_millis(300));
            plain.to_vec()
        }
    }

    /// A `next_block` call dropped while its block is read never leads to a wrong MD5: the
    /// reader refuses to go on (put_blocks keeps its read across its loop's turns).
    #[tokio::test]
    async fn a_block_read_dropped_while_it_transforms_leaves_no_wrong_md5() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..BLOCK_SIZE + 1000).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("big.md"), &bytes).unwrap();
        let root = Arc::new(Beneath::open(dir.path()).unwrap());
        let budget = MemoryBudget::default();
        let plain = Content::open(&root, "big.md", &budget, bytes.len() as u64)
            .await
            .unwrap();
        let view = plain.transformed(Arc::new(SlowCopy));
        let mut reader = view.blocks(BLOCK_SIZE);
        let dropped = tokio::time::timeout(Duration::from_millis(100), reader.next_block()).await;
        assert!(dropped.is_err(), "the read should still be transforming");
        assert!(matches!(
            reader.next_block().await,
            Err(ContentError::Changed)
        ));
        assert!(matches!(reader.finish(), Err(ContentError::Changed)));
        assert_eq!(plain.known_md5(), None, "no MD5 from a broken read");
        // Read without interruption, the view gives the bytes and the file's MD5.
        let mut reader = view.blocks(BLOCK_SIZE);
        let mut read = Vec::new();
        while let Some(block) = reader.next_block().await.unwrap() {
            read.extend_from_slice(&block.data);
        }
        reader.finish().unwrap();
        assert_eq!(read, bytes);
        let md5: [u8; 16] = Md5::digest(&bytes).into();
        assert_eq!(plain.known_md5(), Some(md5));
    }
}
