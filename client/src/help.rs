//! The CLI's longer help texts: exit codes and what `hblock run` gives its
//! command. Documented in `hblock --help` and `hblock run --help`.

pub const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   not acquired / not held / no such lock (acquire answered nil, release
      answered 0, beat answered NOTHELD, info found no key; run --no-wait or
      --timeout without the lock)
  2   usage error
  3   Redis unreachable (when not waiting), or a fatal error: a password,
      the module, an ACL, the key's type, a bad URL, a --limit that does not
      match the lock's (one line: KEY: URL: ERROR: HINT)
  4   run: the lease was lost (NOTHELD, or Redis unreachable for too long) and
      the command was stopped
  5   run --check: the health check failed --check-failures times in a row;
      the command was stopped and the lock released
  run otherwise exits with the command's status (128 + signal when the command
  died of a signal; 127 when it could not be started).";

pub const RUN_HELP: &str = "\
The command runs with these variables set:
  HBLOCK_KEY     the lock's key
  HBLOCK_OWNER   the owner, unique to this run (--owner plus /<random>)
  HBLOCK_TOKEN   the lease's fencing token

Signals: SIGHUP, SIGUSR1, SIGUSR2 and SIGWINCH are passed to the command (a
command that does not handle SIGHUP dies of it; --on-hup ignore keeps SIGHUP
from it); SIGINT, SIGTERM and SIGQUIT are passed on, then hblock waits for the
command, releases and exits. Use `exec` in shell wrappers so signals reach the
program.

Health check (--check CMD): the check gets the variables above and
HBLOCK_CHILD_PID; it runs in a process group of its own (killed when the check
exits or times out), and the last line of its output goes into the log line
of a failure.

Exit codes:
  0   the command exited 0
  1   not acquired (--no-wait, --timeout)
  2   usage error
  3   Redis unreachable or answered an error before the lease was granted
      (a --limit that does not match the lock's included), or a beat got a
      fatal error (the key's type, the ACL, the password changed): the
      command was stopped as on NOTHELD
  4   the lease was lost (NOTHELD, or Redis unreachable for too long) and the
      command was stopped
  5   the health check (--check) failed --check-failures times in a row; the
      command was stopped and the lock released
  N   the command's status (128 + signal when it died of a signal; 127 when it
      could not be started)";
