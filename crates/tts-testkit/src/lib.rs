//! Test support shared by the workspace's integration tests (dev-dependency only, never published):
//! locating the real model weights, a real `tts-server` started in-process on a free port
//! (feature `server`), and a throwaway `redis-server` on a free loopback port.

pub mod models;
pub mod redis;
#[cfg(feature = "server")]
pub mod server;

pub use models::{models_dir, piper_only_models_dir, VOICE};
pub use redis::RedisServer;
#[cfg(feature = "server")]
pub use server::{fresh_storage_dir, TestServer};
