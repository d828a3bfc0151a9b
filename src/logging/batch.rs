//! The log writer: formatted lines are appended to one shared buffer, and a `log-writer`
//! thread writes the buffer out in batches.
//!
//! Why not `tracing_appender::non_blocking`: it hands every line to its thread through a
//! channel and wakes that thread for it, a futex system call per SOAP request on the
//! tokio workers, which cost about a tenth of the CPU under load (BENCHMARKS.md,
//! benchmark 1). Here a logger only takes a mutex and copies its line; the thread is woken
//! once per batch (when the buffer goes from empty to non-empty, or grows past
//! [`WAKE_AT`]), waits [`BATCH_WINDOW`] for more lines to gather, then writes them with one
//! system call. Order is the order in which lines were appended. A writer that cannot keep
//! up makes loggers wait at [`MAX_PENDING`] rather than lose lines; dropping the
//! [`BatchGuard`] (at exit) writes out everything pending.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the thread lets lines gather after the first one of a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(2);
/// Pending bytes at which a logger wakes the thread without waiting for the window.
const WAKE_AT: usize = 256 * 1024;
/// Pending bytes at which loggers wait for the thread (disk slower than the logging).
const MAX_PENDING: usize = 16 * 1024 * 1024;
/// A written batch buffer bigger than this is freed rather than reused: a burst (up to
/// [`MAX_PENDING`]) should not keep its memory for good, while the usual batch, below
/// [`WAKE_AT`], reuses its buffer.
const KEEP_CAPACITY: usize = 4 * WAKE_AT;

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signals the thread: lines are waiting (or the writer is closing).
    has_lines: Condvar,
    /// Signals loggers waiting at `MAX_PENDING`: the buffer was taken.
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A logger that panicked mid-append leaves at worst a partial line.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `MakeWriter` handed to the fmt layer. Cloning shares the buffer.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Keeps the thread; dropping it writes what is pending and stops the thread.
pub struct BatchGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the `log-writer` thread writing to `out`.
pub fn batch_writer<W: Write + Send + 'static>(out: W) -> (BatchWriter, BatchGuard) {
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = Arc::clone(&shared);
            move || write_batches(&shared, out)
        })
        .expect("spawning the log-writer thread");
    (
        BatchWriter {
            shared: Arc::clone(&shared),
        },
        BatchGuard {
            shared,
            thread: Some(thread),
        },
    )
}

fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut pending = shared.lock();
            while pending.bytes.is_empty() && !pending.closed {
                pending = shared
                    .has_lines
                    .wait(pending)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if !pending.closed && pending.bytes.len() < WAKE_AT {
                // Let the lines of the same burst join this write.
                pending = shared
                    .has_lines
                    .wait_timeout(pending, BATCH_WINDOW)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut batch, &mut pending.bytes);
            shared.drained.notify_all();
            pending.closed
        };
        if !batch.is_empty() {
            // Nowhere to report a failing log device but stderr, which may be the device.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > KEEP_CAPACITY {
                batch = Vec::new();
            }
        }
        if closed {
            return;
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.lock();
        while pending.bytes.len() >= MAX_PENDING && !pending.closed {
            pending = self
                .shared
                .drained
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner());
        }
        let was_empty = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        let wake = was_empty || pending.bytes.len() >= WAKE_AT;
        drop(pending);
        if wake {
            self.shared.has_lines.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> BatchWriter {
        self.clone()
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.has_lines.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_order_per_thread() {
        let sink = Sink::default();
        let (writer, guard) = batch_writer(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let mut w = writer.make_writer();
                        w.write_all(format!("t{t} line {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000, "every line written once at drop");
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..5_000).collect::<Vec<_>>(), "thread {t} in order");
        }
    }

    /// A `Write` that reports each write on a channel.
    struct Reporting(std::sync::mpsc::Sender<Vec<u8>>);

    impl Write for Reporting {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_single_line_is_written_without_more_traffic() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (writer, _guard) = batch_writer(Reporting(tx));
        writer.make_writer().write_all(b"alone\n").unwrap();
        // Nothing else is logged and the guard lives: the batch window alone writes it.
        let written = rx.recv_timeout(Duration::from_secs(5)).expect("written");
        assert_eq!(written, b"alone\n");
    }
}
