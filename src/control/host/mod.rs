//! C firmware plugins in a host process of their own: the default
//! (`firmware.plugin_isolation = "process"`). A plugin that crashes, aborts,
//! calls `exit` or loops forever then ends in an error naming the plugin,
//! the shot, the tick and the simulated time, instead of ending or hanging
//! mesobench.
//!
//! Every [`HostedPlugin`] has a host of its own: the mesobench executable run
//! as `mesobench __plugin-host …` ([`HOST_COMMAND`], see [`host_main`]),
//! which loads the plugin with the in-process loader and then serves one
//! call at a time. The two processes share one page of memory (a memfd)
//! holding the call, the [`FwInput`] and [`FwOutput`] structs and a sequence
//! counter each way; a waiter spins briefly, then yields, then sleeps on a
//! futex, so a tick costs a few microseconds when both sides are busy and
//! no CPU when idle. The simulation waits at most `firmware.plugin_timeout_ms`
//! for each answer (the watchdog), checking that the host is alive while it
//! waits. On drop the context is destroyed and the host kept, idle, for
//! the next simulation of the same plugin in this process (so a sweep starts
//! about one host per thread); a host that failed, or one more than the
//! idle limit, is asked to exit and reaped (killed if it does not exit).
//! [`shut_down_idle_hosts`] stops the idle ones; an idle host whose
//! simulation process is gone ends by itself within 0.1 s.
//!
//! The library does not know where the mesobench executable is: the binary
//! registers itself with [`set_host_executable`]; programs that link the
//! library (tests, benches) call it too or set `MESOBENCH_PLUGIN_HOST`
//! ([`HOST_ENV`]).

mod serve;
mod shm;

pub use self::serve::host_main;

use self::shm::{
    post, spin_pays, wait_for, Shm, Waited, CMD_CREATE, CMD_DESTROY, CMD_QUIT, CMD_RESET, CMD_STEP, LIVE, MAX_PARAMS,
};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::plugin::{check_reset, check_step};
use super::{Controller, FirmwareError, FwInput, FwOutput};

/// The first argument that turns the mesobench executable into a plugin host.
pub const HOST_COMMAND: &str = "__plugin-host";
/// Environment variable naming the plugin host executable (the mesobench
/// binary) for programs other than mesobench itself.
pub const HOST_ENV: &str = "MESOBENCH_PLUGIN_HOST";
/// Version of the protocol between a simulation and its host.
const PROTOCOL: u32 = 1;

static HOST: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Register the executable that hosts plugins (the mesobench binary). The
/// binary registers itself at start; it takes precedence over [`HOST_ENV`].
pub fn set_host_executable(path: &Path) {
    *HOST.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.to_path_buf());
}

fn host_executable() -> Result<PathBuf, String> {
    if let Some(p) = HOST.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return Ok(p);
    }
    match std::env::var_os(HOST_ENV) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!(
            "cannot run in a host process: no host executable is known (set {HOST_ENV} to the mesobench binary, \
             or set firmware.plugin_isolation = \"in_process\")"
        )),
    }
}

/// Why a call got no answer.
enum Failure {
    /// The host ended.
    Ended(ExitStatus),
    /// No answer before the deadline (the host was killed).
    Hung(Duration),
}

/// A C plugin running in a host process of its own.
pub struct HostedPlugin {
    path: String,
    host: Option<Host>,
    timeout: Duration,
}

/// A host process and its shared page.
struct Host {
    exe: PathBuf,
    lib: PathBuf,
    shm: Shm,
    child: Option<Child>,
    seq: u32,
}

// The mapping and the child are owned by one value at a time and only used through &mut self.
unsafe impl Send for Host {}

/// Hosts whose context was destroyed cleanly, kept for the next simulation
/// of the same plugin (a sweep starts a process per thread, not per run).
static IDLE: Mutex<Vec<Host>> = Mutex::new(Vec::new());

fn idle_limit() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 32) * 2
}

/// Stop every idle plugin host of this process (the binary calls this
/// before it exits; a host whose simulation process is gone also ends by
/// itself within 0.1 s).
pub fn shut_down_idle_hosts() {
    let idle = std::mem::take(&mut *IDLE.lock().unwrap_or_else(|e| e.into_inner()));
    drop(idle);
}

/// A plain rendering of a time in ms: at most 4 decimals, no trailing zeros.
fn fmt_ms(t_ms: f64) -> String {
    let s = format!("{t_ms:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "unknown signal",
    }
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Ended(status) => match (status.signal(), status.code()) {
            (Some(sig), _) => format!("crashed (signal {sig}, {})", signal_name(sig)),
            (None, Some(code)) => format!("ended its host process with exit status {code} (did it call exit()?)"),
            _ => format!("ended its host process ({status})"),
        },
        Failure::Hung(t) => format!(
            "did not answer within {} ms (hung? the limit is firmware.plugin_timeout_ms) and was stopped",
            fmt_ms(t.as_secs_f64() * 1e3)
        ),
    }
}

impl Host {
    /// Start a host process for the plugin at `lib` (it loads nothing yet).
    fn spawn(exe: &Path, lib: &Path, error: &dyn Fn(String) -> FirmwareError) -> Result<Host, FirmwareError> {
        let (shm, fd) =
            Shm::create().map_err(|e| error(format!("cannot run in a host process: shared memory: {e}")))?;
        // Call 1 is the host's start.
        shm.region().req.store(1, SeqCst);
        let raw_fd = fd.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.arg(HOST_COMMAND).arg(PROTOCOL.to_string()).arg(raw_fd.to_string()).arg(lib);
        cmd.stdin(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // The host inherits the shared page; no other child does.
                if libc::fcntl(raw_fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // A crashing plugin leaves no core file behind.
                let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                Ok(())
            })
        };
        let child = cmd.spawn().map_err(|e| error(format!("cannot start its host process {}: {e}", exe.display())))?;
        drop(fd);
        let mut host = Host { exe: exe.to_path_buf(), lib: lib.to_path_buf(), shm, child: Some(child), seq: 1 };
        // Starting a process can take a while on a busy machine.
        let started = host.answer(Duration::from_secs(10));
        let host_of = |what: String| {
            error(format!(
                "cannot run in a host process: the host {} {what} (is it the mesobench binary?)",
                exe.display()
            ))
        };
        match started {
            Err(Failure::Ended(status)) => Err(host_of(format!("ended before it started ({status})"))),
            Err(Failure::Hung(t)) => {
                Err(host_of(format!("did not start within {} ms and was stopped", fmt_ms(t.as_secs_f64() * 1e3))))
            }
            Ok(()) if host.shm.rc() != 0 => Err(host_of(format!("refused: {}", host.shm.msg()))),
            Ok(()) => Ok(host),
        }
    }

    /// Wait for the answer to call `self.seq`.
    fn answer(&mut self, limit: Duration) -> Result<(), Failure> {
        let Some(child) = self.child.as_mut() else {
            return Err(Failure::Hung(Duration::ZERO));
        };
        let region = self.shm.region();
        let seq = self.seq;
        let mut ended = None;
        let waited = wait_for(
            &region.ack,
            &region.sim_sleeping,
            |v| v == seq,
            region.spin.load(SeqCst) != 0,
            Some(Instant::now() + limit),
            Duration::from_millis(10),
            || match child.try_wait() {
                Ok(Some(status)) => {
                    ended = Some(status);
                    false
                }
                Ok(None) => true,
                Err(_) => false,
            },
        );
        match waited {
            Waited::Ready(_) => Ok(()),
            Waited::Gone => {
                self.child = None;
                match ended {
                    Some(status) => Err(Failure::Ended(status)),
                    None => Err(Failure::Hung(limit)),
                }
            }
            Waited::TimedOut => {
                let mut child = self.child.take().expect("checked above");
                // It may have ended just now: report that rather than a hang.
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(Failure::Ended(status));
                }
                let _ = child.kill();
                let _ = child.wait();
                Err(Failure::Hung(limit))
            }
        }
    }

    /// Send `cmd` and wait at most `limit` for its answer.
    fn call(&mut self, cmd: u32, limit: Duration) -> Result<(), Failure> {
        if self.child.is_none() {
            return Err(Failure::Hung(Duration::ZERO));
        }
        self.seq = self.seq.wrapping_add(1);
        self.shm.set_cmd(cmd);
        let region = self.shm.region();
        region.spin.store(spin_pays() as u32, SeqCst);
        post(&region.req, &region.host_sleeping, self.seq);
        self.answer(limit)
    }
}

impl Drop for Host {
    /// Ask the host to destroy any context and exit; reap it (kill it if it does not exit).
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let limit = Duration::from_secs(1);
        let asked = self.call(CMD_QUIT, limit).is_ok();
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + if asked { limit } else { Duration::ZERO };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(50)),
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl HostedPlugin {
    /// Run the plugin at `path` in a host process (an idle one of this
    /// plugin, or a new one) and create a context with `params` there; each
    /// later call waits at most `timeout` s.
    pub fn load(path: &Path, params: &[f64], timeout: f64) -> Result<HostedPlugin, FirmwareError> {
        let shown = path.display().to_string();
        let host_error = |what: String| FirmwareError::Host { path: shown.clone(), what, at: String::new() };
        if params.len() > MAX_PARAMS {
            return Err(FirmwareError::Load {
                path: shown,
                message: format!("{} parameters; a host process takes at most {MAX_PARAMS}", params.len()),
            });
        }
        let exe = host_executable().map_err(host_error)?;
        let idle = {
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            // A host that ended while idle (killed from outside) is dropped (reaped).
            idle.retain_mut(|h| h.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))));
            idle.iter().position(|h| h.exe == exe && h.lib == path).map(|i| idle.swap_remove(i))
        };
        let mut host = match idle {
            Some(h) => h,
            None => Host::spawn(&exe, path, &host_error)?,
        };
        host.shm.set_params(params);
        let timeout = Duration::from_secs_f64(timeout);
        // Loading the library can take a while on a busy machine: at least 5 s.
        if let Err(f) = host.call(CMD_CREATE, timeout.max(Duration::from_secs(5))) {
            return Err(FirmwareError::Host {
                path: shown,
                what: describe(&f),
                at: " while it was being loaded".into(),
            });
        }
        if host.shm.rc() != 0 {
            return Err(FirmwareError::Load { path: shown, message: host.shm.msg() });
        }
        LIVE.fetch_add(1, SeqCst);
        Ok(HostedPlugin { path: shown, host: Some(host), timeout })
    }

    fn call(&mut self, cmd: u32) -> Result<(), Failure> {
        match self.host.as_mut() {
            Some(h) => h.call(cmd, self.timeout),
            None => Err(Failure::Hung(Duration::ZERO)),
        }
    }

    fn shm(&self) -> &Shm {
        &self.host.as_ref().expect("a host until drop").shm
    }

    fn failed(&self, f: Failure, at: String) -> FirmwareError {
        let what = match f {
            Failure::Hung(d) if d.is_zero() => "is not running (it failed before)".to_string(),
            f => describe(&f),
        };
        FirmwareError::Host { path: self.path.clone(), what, at }
    }
}

impl Drop for HostedPlugin {
    /// Destroy the context; keep the host for the next simulation if that
    /// went well, otherwise stop it.
    fn drop(&mut self) {
        LIVE.fetch_sub(1, SeqCst);
        let Some(mut host) = self.host.take() else { return };
        let clean = host.call(CMD_DESTROY, self.timeout.min(Duration::from_secs(1))).is_ok() && host.shm.rc() == 0;
        if clean {
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < idle_limit() {
                idle.push(host);
                return;
            }
        }
        drop(host);
    }
}

impl Controller for HostedPlugin {
    fn name(&self) -> String {
        format!("plugin {}", self.path)
    }
    fn reset(&mut self) -> Result<(), FirmwareError> {
        self.call(CMD_RESET).map_err(|f| self.failed(f, " in mb_fw_reset, before the session".into()))?;
        check_reset(&self.name(), self.shm().rc())
    }
    fn step(&mut self, input: &FwInput, out: &mut FwOutput) -> Result<(), FirmwareError> {
        if let Some(h) = self.host.as_ref() {
            // SAFETY: the host only touches these fields while it holds the turn.
            unsafe {
                h.shm.input_ptr().write_volatile(*input);
                h.shm.output_ptr().write_volatile(*out);
            }
        }
        self.call(CMD_STEP).map_err(|f| {
            let at = format!(" at shot {}, tick {}, t = {} ms", input.shot, input.tick, fmt_ms(input.t * 1e3));
            self.failed(f, at)
        })?;
        // SAFETY: the answer is complete (acknowledged).
        *out = unsafe { self.shm().output_ptr().read_volatile() };
        check_step(&self.name(), input, self.shm().rc())
    }
}
