//! The page of memory the simulation and its plugin host share: the call,
//! the firmware's input and output, the sequence counters, and the futex
//! waits (spin, yield, sleep) on them.

use crate::control::{FwInput, FwOutput};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

pub(super) const CMD_CREATE: u32 = 1;
pub(super) const CMD_RESET: u32 = 2;
pub(super) const CMD_STEP: u32 = 3;
pub(super) const CMD_QUIT: u32 = 4;
pub(super) const CMD_DESTROY: u32 = 5;
const MSG: usize = 2048;
/// Most `plugin_params` a host process takes.
pub(super) const MAX_PARAMS: usize = 1024;
const REGION_BYTES: usize = 16384;

/// The shared page.
#[repr(C)]
pub(super) struct Region {
    /// Sequence number of the latest call (written by the simulation).
    pub(super) req: AtomicU32,
    /// Sequence number of the latest answer (written by the host).
    pub(super) ack: AtomicU32,
    /// 1 while the host sleeps on `req`.
    pub(super) host_sleeping: AtomicU32,
    /// 1 while the simulation sleeps on `ack`.
    pub(super) sim_sleeping: AtomicU32,
    /// 1 when the host should spin before it sleeps (set by the simulation).
    pub(super) spin: AtomicU32,
    pub(super) cmd: u32,
    pub(super) rc: i32,
    pub(super) msg_len: u32,
    pub(super) input: FwInput,
    pub(super) output: FwOutput,
    pub(super) n_params: u32,
    _pad2: u32,
    pub(super) params: [f64; MAX_PARAMS],
    pub(super) msg: [u8; MSG],
}

const _: () = assert!(std::mem::size_of::<Region>() <= REGION_BYTES);

/// A mapping of the shared page.
pub(super) struct Shm {
    ptr: *mut Region,
}

impl Shm {
    /// A new zeroed page and its file descriptor (close-on-exec).
    pub(super) fn create() -> std::io::Result<(Shm, OwnedFd)> {
        // SAFETY: plain system calls; the descriptor is owned at once.
        let fd = unsafe { libc::memfd_create(c"mesobench-plugin".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: fd is valid.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), REGION_BYTES as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((Shm::map(&fd)?, fd))
    }

    pub(super) fn map(fd: &OwnedFd) -> std::io::Result<Shm> {
        // SAFETY: maps a page of a valid descriptor; checked for failure.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                REGION_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Shm { ptr: ptr.cast() })
    }

    pub(super) fn region(&self) -> &Region {
        // SAFETY: the page is mapped for the life of self. The other process
        // writes the plain fields only between the sequence handovers.
        unsafe { &*self.ptr }
    }

    pub(super) fn set_cmd(&self, cmd: u32) {
        // SAFETY: the field is only written by the side that owns the turn.
        unsafe { std::ptr::addr_of_mut!((*self.ptr).cmd).write_volatile(cmd) }
    }
    pub(super) fn cmd(&self) -> u32 {
        // SAFETY: as set_cmd.
        unsafe { std::ptr::addr_of!((*self.ptr).cmd).read_volatile() }
    }
    pub(super) fn set_rc(&self, rc: i32) {
        // SAFETY: as set_cmd.
        unsafe { std::ptr::addr_of_mut!((*self.ptr).rc).write_volatile(rc) }
    }
    pub(super) fn rc(&self) -> i32 {
        // SAFETY: as set_cmd.
        unsafe { std::ptr::addr_of!((*self.ptr).rc).read_volatile() }
    }
    pub(super) fn input_ptr(&self) -> *mut FwInput {
        // SAFETY: a field pointer inside the mapping.
        unsafe { std::ptr::addr_of_mut!((*self.ptr).input) }
    }
    pub(super) fn output_ptr(&self) -> *mut FwOutput {
        // SAFETY: a field pointer inside the mapping.
        unsafe { std::ptr::addr_of_mut!((*self.ptr).output) }
    }
    pub(super) fn set_msg(&self, msg: &str) {
        let bytes = &msg.as_bytes()[..msg.len().min(MSG)];
        // SAFETY: the copy stays inside the mapping's msg field.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), std::ptr::addr_of_mut!((*self.ptr).msg).cast(), bytes.len());
            std::ptr::addr_of_mut!((*self.ptr).msg_len).write_volatile(bytes.len() as u32);
        }
    }
    pub(super) fn set_params(&self, params: &[f64]) {
        let n = params.len().min(MAX_PARAMS);
        // SAFETY: the copy stays inside the mapping's params field.
        unsafe {
            std::ptr::copy_nonoverlapping(params.as_ptr(), std::ptr::addr_of_mut!((*self.ptr).params).cast(), n);
            std::ptr::addr_of_mut!((*self.ptr).n_params).write_volatile(n as u32);
        }
    }
    pub(super) fn params(&self) -> Vec<f64> {
        // SAFETY: the length is clamped to the field.
        unsafe {
            let n = (std::ptr::addr_of!((*self.ptr).n_params).read_volatile() as usize).min(MAX_PARAMS);
            std::slice::from_raw_parts(std::ptr::addr_of!((*self.ptr).params).cast::<f64>(), n).to_vec()
        }
    }
    pub(super) fn msg(&self) -> String {
        // SAFETY: the length is clamped to the field.
        unsafe {
            let n = (std::ptr::addr_of!((*self.ptr).msg_len).read_volatile() as usize).min(MSG);
            let bytes = std::slice::from_raw_parts(std::ptr::addr_of!((*self.ptr).msg).cast::<u8>(), n);
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by Shm::map and is unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), REGION_BYTES) };
    }
}

fn futex_wait(word: &AtomicU32, val: u32, timeout: Duration) {
    let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as _ };
    // SAFETY: a shared (not private) futex wait on a word of the mapping.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: a shared futex wake on a word of the mapping.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        )
    };
}

/// Publish `value` in `word`, waking its waiter if it sleeps.
pub(super) fn post(word: &AtomicU32, sleeping: &AtomicU32, value: u32) {
    word.store(value, SeqCst);
    if sleeping.load(SeqCst) != 0 {
        futex_wake(word);
    }
}

/// How long a waiter spins and yields before it sleeps on the futex, when
/// every simulation thread and its host can have a core.
const SPIN: Duration = Duration::from_micros(50);

/// Hosted plugins alive in this process.
pub(super) static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether waiters should spin: only while each live simulation and its
/// host can have a core (spinning on a shared core only delays the other side).
pub(super) fn spin_pays() -> bool {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    2 * LIVE.load(SeqCst) <= cores
}

pub(super) enum Waited {
    Ready(u32),
    Gone,
    TimedOut,
}

/// Wait until `ready(word)`: spin, then yield, then sleep in slices of
/// `slice`, asking `alive()` after each; give up at `deadline`.
pub(super) fn wait_for(
    word: &AtomicU32,
    sleeping: &AtomicU32,
    ready: impl Fn(u32) -> bool,
    spin: bool,
    deadline: Option<Instant>,
    slice: Duration,
    mut alive: impl FnMut() -> bool,
) -> Waited {
    let start = Instant::now();
    let mut i = 0u32;
    loop {
        let v = word.load(SeqCst);
        if ready(v) {
            return Waited::Ready(v);
        }
        if i < 200 {
            std::hint::spin_loop();
            i += 1;
        } else if spin && start.elapsed() < SPIN {
            std::thread::yield_now();
        } else {
            break;
        }
    }
    loop {
        sleeping.store(1, SeqCst);
        let v = word.load(SeqCst);
        if ready(v) {
            sleeping.store(0, SeqCst);
            return Waited::Ready(v);
        }
        let mut wait = slice;
        if let Some(d) = deadline {
            let now = Instant::now();
            if now >= d {
                sleeping.store(0, SeqCst);
                return Waited::TimedOut;
            }
            wait = wait.min(d - now);
        }
        futex_wait(word, v, wait);
        sleeping.store(0, SeqCst);
        let v = word.load(SeqCst);
        if ready(v) {
            return Waited::Ready(v);
        }
        if !alive() {
            return Waited::Gone;
        }
    }
}
