//! The host process's side: load the plugin with the in-process loader and
//! serve one call at a time until told to quit or the simulation is gone.

use super::shm::{post, wait_for, Shm, Waited, CMD_CREATE, CMD_DESTROY, CMD_QUIT, CMD_RESET, CMD_STEP};
use super::{HOST_ENV, PROTOCOL};
use crate::control::plugin::Plugin;
use crate::control::FirmwareError;
use std::ffi::OsString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

/// The host process: `mesobench __plugin-host PROTOCOL FD PATH [PARAM_BITS…]`.
/// Serves calls until told to quit or until the simulation is gone, then
/// ends the process (without running exit handlers). Never prints.
pub fn host_main(args: &[OsString]) -> ! {
    let code = serve(args);
    // SAFETY: flushes C streams the plugin wrote to, then ends the process.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(code)
    }
}

/// Close every descriptor the host inherited but `keep` and the standard
/// streams (a lock or a pipe of the simulation's parent must not outlive it here).
fn close_inherited(keep: i32) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds {
        if fd > 2 && fd != keep {
            // SAFETY: nothing in this fresh process uses these descriptors.
            unsafe { libc::close(fd) };
        }
    }
}

fn serve(args: &[OsString]) -> i32 {
    let text = |i: usize| args.get(i).and_then(|a| a.to_str());
    let Some(fd) = text(1).and_then(|s| s.parse::<i32>().ok()).filter(|fd| *fd >= 0) else {
        return 2;
    };
    close_inherited(fd);
    // SAFETY: the simulation passed this descriptor for the host alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let Ok(shm) = Shm::map(&fd) else {
        return 2;
    };
    drop(fd);
    let region = shm.region();
    let answer = |seq: u32| post(&region.ack, &region.sim_sleeping, seq);
    let refuse = |msg: &str| {
        shm.set_msg(msg);
        shm.set_rc(1);
        answer(1);
        2
    };
    if text(0) != Some(PROTOCOL.to_string().as_str()) {
        return refuse(&format!(
            "the plugin host speaks another protocol ({:?}, expected {PROTOCOL}): is {HOST_ENV} this mesobench?",
            text(0)
        ));
    }
    let Some(path) = args.get(2) else {
        return refuse("the plugin host got no plugin path");
    };
    let path = Path::new(path);
    let parent = std::os::unix::process::parent_id();
    // The simulation may be killed while a plugin call loops forever: a
    // thread of its own ends the host then, whatever the plugin does.
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        if std::os::unix::process::parent_id() != parent {
            // SAFETY: ends this process at once; nothing is left to clean up.
            unsafe { libc::_exit(0) }
        }
    });
    shm.set_rc(0);
    answer(1);
    serve_calls(&shm, path, parent)
}

/// Answer the simulation's calls on `shm` with the plugin at `path` until
/// it quits or its process (`parent`) is gone.
fn serve_calls(shm: &Shm, path: &Path, parent: u32) -> i32 {
    let region = shm.region();
    let answer = |seq: u32| post(&region.ack, &region.sim_sleeping, seq);
    let mut plugin: Option<Plugin> = None;
    let mut seen = 1u32;
    loop {
        let waited = wait_for(
            &region.req,
            &region.host_sleeping,
            |v| v != seen,
            region.spin.load(SeqCst) != 0,
            None,
            Duration::from_millis(100),
            || std::os::unix::process::parent_id() == parent,
        );
        match waited {
            Waited::Ready(v) => seen = v,
            // The simulation is gone: nobody to answer.
            Waited::Gone | Waited::TimedOut => return 0,
        }
        let rc = match (shm.cmd(), plugin.as_mut()) {
            (CMD_CREATE, _) => {
                // The old context goes before the new one is made.
                drop(plugin.take());
                let (p, rc) = create(shm, path);
                plugin = p;
                rc
            }
            (CMD_DESTROY, _) => {
                plugin = None;
                0
            }
            (CMD_QUIT, _) => {
                drop(plugin);
                answer(seen);
                return 0;
            }
            (CMD_RESET, Some(p)) => p.reset_raw(),
            (CMD_STEP, Some(p)) => p.step_raw(shm.input_ptr(), shm.output_ptr()),
            (other, _) => {
                shm.set_msg(&format!("call {other} without a context"));
                -1
            }
        };
        shm.set_rc(rc);
        answer(seen);
    }
}

/// Load the plugin at `path` with the parameters in `shm`: the plugin and
/// 0, or none and 1 with the message in `shm`.
fn create(shm: &Shm, path: &Path) -> (Option<Plugin>, i32) {
    match Plugin::load(path, &shm.params()) {
        Ok(p) => (Some(p), 0),
        Err(FirmwareError::Load { message, .. }) => {
            shm.set_msg(&message);
            (None, 1)
        }
        Err(e) => {
            shm.set_msg(&e.to_string());
            (None, 1)
        }
    }
}
