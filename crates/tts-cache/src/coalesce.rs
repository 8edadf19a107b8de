//! Single flight: identical requests in flight at the same time share one synthesis. The first
//! caller for a key becomes the leader and gets a [`FlightWriter`]; everyone (the leader's own
//! response included) reads through a [`FlightReader`], which replays the chunks produced so far
//! and then follows live ones, so a streaming follower gets the whole file from its first byte.
//!
//! The synthesis is owned by the flight, not by one client: it goes on while any reader remains,
//! and the writer can learn that every reader left ([`FlightWriter::abandoned`]) to cancel it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

use crate::{CacheKey, EntryMeta};

/// Why a flight failed: the leader's own error, shared by every reader. Callers downcast it to
/// the type their leader failed with, so a follower answers exactly as the leader did (a full
/// queue, a timeout, invalid text) instead of with a generic failure.
pub type FlightError = Arc<dyn std::error::Error + Send + Sync>;

/// A flight that ended without the leader's error: the leader went away, or nobody was left.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlightAborted(pub String);

impl FlightAborted {
    pub fn error(message: impl Into<String>) -> FlightError {
        Arc::new(Self(message.into()))
    }
}

/// What a reader sees, in order: chunks, then exactly one `Done` or `Failed`.
#[derive(Debug, Clone)]
pub enum FlightEvent {
    Chunk(Bytes),
    Done(Arc<EntryMeta>),
    Failed(FlightError),
}

#[derive(Default)]
struct FlightState {
    chunks: Vec<Bytes>,
    outcome: Option<Result<Arc<EntryMeta>, FlightError>>,
    readers: usize,
}

struct Flight {
    state: Mutex<FlightState>,
    /// Bumped after every change of `state`; readers and the writer wait on it.
    changed: watch::Sender<u64>,
}

impl Flight {
    fn update(&self, change: impl FnOnce(&mut FlightState)) {
        change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.send_modify(|version| *version += 1);
    }
}

/// The in-process registry of flights by key.
#[derive(Default)]
pub struct Coalescer {
    flights: Arc<Mutex<HashMap<CacheKey, Arc<Flight>>>>,
}

/// The result of [`Coalescer::join`].
pub enum Joined {
    /// Nobody is synthesizing this key: do it, feeding the writer; read the result like anyone.
    Leader(FlightWriter, FlightReader),
    /// Another request is synthesizing it: read its output.
    Follower(FlightReader),
}

impl Coalescer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn join(&self, key: &CacheKey) -> Joined {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = flights.get(key) {
            return Joined::Follower(FlightReader::new(flight.clone()));
        }
        let (changed, _) = watch::channel(0);
        let flight = Arc::new(Flight {
            state: Mutex::new(FlightState::default()),
            changed,
        });
        flights.insert(key.clone(), flight.clone());
        let reader = FlightReader::new(flight.clone());
        let writer = FlightWriter {
            flight,
            key: key.clone(),
            flights: self.flights.clone(),
            finished: false,
        };
        Joined::Leader(writer, reader)
    }

    /// Keys being synthesized right now.
    pub fn in_flight(&self) -> usize {
        self.flights.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The leader's end. Dropping it unfinished fails the flight, so followers never hang.
pub struct FlightWriter {
    flight: Arc<Flight>,
    key: CacheKey,
    flights: Arc<Mutex<HashMap<CacheKey, Arc<Flight>>>>,
    finished: bool,
}

impl FlightWriter {
    pub fn push(&self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.flight.update(|state| state.chunks.push(chunk));
        }
    }

    /// The bytes pushed so far, as one buffer.
    pub fn collected(&self) -> Bytes {
        let state = self.flight.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.chunks.as_slice() {
            [one] => one.clone(),
            chunks => Bytes::from(chunks.concat()),
        }
    }

    /// Ends the flight successfully. Call after the entry is in the cache, so a request arriving
    /// after the flight is gone finds it there.
    pub fn finish(mut self, meta: Arc<EntryMeta>) {
        self.end(Ok(meta));
    }

    /// Ends the flight with the leader's error; every reader gets it.
    pub fn fail(mut self, error: FlightError) {
        self.end(Err(error));
    }

    fn end(&mut self, outcome: Result<Arc<EntryMeta>, FlightError>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        self.flight.update(|state| state.outcome = Some(outcome));
    }

    /// Resolves once no reader is left (every client went away): the synthesis may stop.
    pub async fn abandoned(&self) {
        let mut changed = self.flight.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if self
                .flight
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .readers
                == 0
            {
                return;
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for FlightWriter {
    fn drop(&mut self) {
        self.end(Err(FlightAborted::error(
            "the synthesizing request ended without a result",
        )));
    }
}

/// One reader of a flight, from the first chunk on.
pub struct FlightReader {
    flight: Arc<Flight>,
    changed: watch::Receiver<u64>,
    next: usize,
    ended: bool,
}

impl FlightReader {
    fn new(flight: Arc<Flight>) -> Self {
        flight.update(|state| state.readers += 1);
        let changed = flight.changed.subscribe();
        Self {
            flight,
            changed,
            next: 0,
            ended: false,
        }
    }

    /// The next event; `None` after the final one.
    pub async fn next(&mut self) -> Option<FlightEvent> {
        if self.ended {
            return None;
        }
        loop {
            self.changed.borrow_and_update();
            {
                let state = self.flight.state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(chunk) = state.chunks.get(self.next) {
                    self.next += 1;
                    return Some(FlightEvent::Chunk(chunk.clone()));
                }
                if let Some(outcome) = &state.outcome {
                    self.ended = true;
                    return Some(match outcome {
                        Ok(meta) => FlightEvent::Done(meta.clone()),
                        Err(error) => FlightEvent::Failed(error.clone()),
                    });
                }
            }
            if self.changed.changed().await.is_err() {
                self.ended = true;
                return Some(FlightEvent::Failed(FlightAborted::error("flight vanished")));
            }
        }
    }

    /// Reads to the end: the whole file and its metadata.
    pub async fn collect(mut self) -> Result<(Bytes, Arc<EntryMeta>), FlightError> {
        let mut chunks = Vec::new();
        while let Some(event) = self.next().await {
            match event {
                FlightEvent::Chunk(chunk) => chunks.push(chunk),
                FlightEvent::Done(meta) => {
                    let bytes = match chunks.as_slice() {
                        [one] => one.clone(),
                        many => Bytes::from(many.concat()),
                    };
                    return Ok((bytes, meta));
                }
                FlightEvent::Failed(error) => return Err(error),
            }
        }
        Err(FlightAborted::error("flight ended without an outcome"))
    }
}

impl Drop for FlightReader {
    fn drop(&mut self) {
        self.flight
            .update(|state| state.readers = state.readers.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        crate::fixtures::key("t")
    }

    fn meta() -> Arc<EntryMeta> {
        Arc::new(crate::fixtures::meta("v", 1))
    }

    #[tokio::test]
    async fn late_follower_replays_chunks_from_the_start() {
        let coalescer = Coalescer::new();
        let Joined::Leader(writer, leader_reader) = coalescer.join(&key()) else {
            panic!("first join must lead");
        };
        writer.push(Bytes::from_static(b"abc"));
        writer.push(Bytes::from_static(b"def"));
        let Joined::Follower(follower) = coalescer.join(&key()) else {
            panic!("second join must follow");
        };
        let follower = tokio::spawn(follower.collect());
        writer.push(Bytes::from_static(b"ghi"));
        writer.finish(meta());
        assert_eq!(&follower.await.unwrap().unwrap().0[..], b"abcdefghi");
        assert_eq!(&leader_reader.collect().await.unwrap().0[..], b"abcdefghi");
        assert_eq!(coalescer.in_flight(), 0);
    }

    #[tokio::test]
    async fn dropped_writer_fails_followers_instead_of_hanging() {
        let coalescer = Coalescer::new();
        let Joined::Leader(writer, _reader) = coalescer.join(&key()) else {
            panic!("first join must lead");
        };
        let Joined::Follower(follower) = coalescer.join(&key()) else {
            panic!("second join must follow");
        };
        drop(writer);
        assert!(follower.collect().await.is_err());
        assert!(matches!(coalescer.join(&key()), Joined::Leader(..)));
    }

    #[tokio::test]
    async fn writer_learns_when_every_reader_left() {
        let coalescer = Coalescer::new();
        let Joined::Leader(writer, reader) = coalescer.join(&key()) else {
            panic!("first join must lead");
        };
        let Joined::Follower(follower) = coalescer.join(&key()) else {
            panic!("second join must follow");
        };
        let abandoned = tokio::spawn(async move {
            writer.abandoned().await;
            writer
        });
        drop(reader);
        tokio::task::yield_now().await;
        assert!(!abandoned.is_finished());
        drop(follower);
        let writer = abandoned.await.unwrap();
        writer.fail(FlightAborted::error("nobody listens"));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("queue full, retry in {0} s")]
    struct Overloaded(u64);

    #[tokio::test]
    async fn followers_get_the_leaders_own_error() {
        let coalescer = Coalescer::new();
        let Joined::Leader(writer, reader) = coalescer.join(&key()) else {
            panic!("first join must lead");
        };
        let Joined::Follower(follower) = coalescer.join(&key()) else {
            panic!("second join must follow");
        };
        writer.fail(Arc::new(Overloaded(3)));
        for outcome in [follower.collect().await, reader.collect().await] {
            let error = outcome.expect_err("the flight failed");
            let typed = error
                .downcast_ref::<Overloaded>()
                .expect("the leader's type");
            assert_eq!(typed.0, 3);
        }
    }
}
