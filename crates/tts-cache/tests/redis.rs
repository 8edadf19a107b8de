//! The Redis tier and the cross-replica lock against a real `redis-server` on a loopback port.

use std::time::{Duration, Instant};

use tts_cache::{
    CacheKey, CachedAudio, EntryMeta, KeyInput, RedisConfig, RedisTier, RemoteEvent, RemoteLock,
    StreamClaim,
};
use tts_testkit::RedisServer;

fn key(text: &str) -> CacheKey {
    CacheKey::for_request(&KeyInput {
        model_id: "piper",
        model_digest: "weights",
        voice_id: "alice",
        voice_digest: "",
        text,
        speed: 1.0,
        format: "mp3",
        sample_rate: None,
        bitrate_kbps: None,
        normalize_loudness: false,
    })
}

fn audio(voice: &str) -> CachedAudio {
    CachedAudio::new(
        vec![42u8; 4_096],
        EntryMeta {
            format: "mp3".into(),
            content_type: "audio/mpeg".into(),
            sample_rate: 22_050,
            voice_id: voice.into(),
            characters: 12,
            sentences: 1,
            audio_seconds: 1.5,
            synth_seconds: 0.4,
        },
    )
}

fn tier(redis: &RedisServer, lock_ttl: Duration) -> std::sync::Arc<RedisTier> {
    let mut config = RedisConfig::new(redis.url());
    config.lock_ttl = lock_ttl;
    RedisTier::new(config).expect("redis url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_round_trip_and_purge_by_voice() {
    let redis = RedisServer::start();
    let tier = tier(&redis, Duration::from_secs(5));
    tier.put(&key("a"), &audio("alice")).await.unwrap();
    tier.put(&key("b"), &audio("alice(1)+bob(1)"))
        .await
        .unwrap();
    tier.put(&key("c"), &audio("carol")).await.unwrap();
    let found = tier.get(&key("a")).await.unwrap().expect("stored entry");
    assert_eq!(found.bytes, audio("alice").bytes);
    assert_eq!(*found.meta, *audio("alice").meta);
    assert_eq!(tier.purge_voice("alice").await.unwrap(), 2);
    assert!(tier.get(&key("b")).await.unwrap().is_none());
    assert!(tier.get(&key("c")).await.unwrap().is_some());
    assert_eq!(tier.purge_all().await.unwrap(), 1);
    assert!(tier.get(&key("c")).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_replica_gets_the_leaders_entry() {
    let redis = RedisServer::start();
    let leader = tier(&redis, Duration::from_secs(5));
    let follower = tier(&redis, Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    let RemoteLock::Acquired(guard) = leader.lock_or_wait(&key("x"), deadline).await else {
        panic!("first replica must get the lock");
    };
    let waiting = tokio::spawn(async move { follower.lock_or_wait(&key("x"), deadline).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "follower did not wait for the lock holder"
    );
    leader.put(&key("x"), &audio("alice")).await.unwrap();
    guard.release().await;
    match waiting.await.unwrap() {
        RemoteLock::Filled(found) => assert_eq!(found.bytes, audio("alice").bytes),
        _ => panic!("follower should have received the leader's entry"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_of_a_dead_replica_expires_and_is_taken_over() {
    let redis = RedisServer::start();
    let survivor = tier(&redis, Duration::from_millis(400));
    // A replica that took the lock and died: nobody refreshes or releases it.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let lock_name = format!("tts:lock:{}", key("y"));
    let _: () = redis::cmd("SET")
        .arg(&lock_name)
        .arg("dead-replica")
        .arg("PX")
        .arg(400)
        .query_async(&mut connection)
        .await
        .unwrap();
    let started = Instant::now();
    let outcome = survivor
        .lock_or_wait(&key("y"), started + Duration::from_secs(5))
        .await;
    assert!(matches!(outcome, RemoteLock::Acquired(_)), "no takeover");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "took a lock that was held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_when_redis_is_down() {
    let mut redis = RedisServer::start();
    let tier = tier(&redis, Duration::from_secs(5));
    tier.put(&key("z"), &audio("alice")).await.unwrap();
    redis.kill();
    let started = Instant::now();
    assert!(tier.get(&key("z")).await.is_err());
    assert!(tier.put(&key("z"), &audio("alice")).await.is_err());
    let outcome = tier
        .lock_or_wait(&key("z"), Instant::now() + Duration::from_secs(5))
        .await;
    assert!(matches!(outcome, RemoteLock::Unavailable));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "outage calls took {:?}",
        started.elapsed()
    );
    assert!(tier.errors() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_follower_reads_the_leaders_chunks_in_order_then_its_outcome() {
    let redis = RedisServer::start();
    let leader = tier(&redis, Duration::from_secs(5));
    let other_replica = tier(&redis, Duration::from_secs(5));
    let StreamClaim::Lead(guard, publisher) = leader.claim_stream(&key("s")).await else {
        panic!("the first claim must lead");
    };
    let StreamClaim::Follow(mut follower) = other_replica.claim_stream(&key("s")).await else {
        panic!("a claim while the lock is held must follow");
    };
    publisher.chunk(b"first ");
    let reader = tokio::spawn(async move {
        let mut bytes = Vec::new();
        loop {
            match follower.next().await.expect("redis") {
                RemoteEvent::Chunk(chunk) => bytes.extend_from_slice(&chunk),
                RemoteEvent::Done(meta) => return (bytes, meta),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher.chunk(b"second");
    let meta = audio("alice").meta;
    publisher.finish(Ok(&meta)).await;
    guard.release().await;
    let (bytes, got) = reader.await.unwrap();
    assert_eq!(bytes, b"first second");
    assert_eq!(got, *meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_follower_learns_that_its_leader_died() {
    let redis = RedisServer::start();
    let other_replica = tier(&redis, Duration::from_millis(300));
    // A replica that took the lock, published a chunk and died: nobody refreshes the lock.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("tts:lock:{}", key("d")))
        .arg("dead-replica")
        .arg("PX")
        .arg(300)
        .query_async(&mut connection)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("tts:flight:{}", key("d")))
        .arg("*")
        .arg("chunk")
        .arg(b"half a file".as_slice())
        .query_async(&mut connection)
        .await
        .unwrap();
    let StreamClaim::Follow(mut follower) = other_replica.claim_stream(&key("d")).await else {
        panic!("a claim while the lock is held must follow");
    };
    let started = Instant::now();
    let first = follower.next().await.expect("redis");
    assert!(
        matches!(&first, RemoteEvent::Chunk(c) if &c[..] == b"half a file"),
        "{first:?}"
    );
    let event = tokio::time::timeout(Duration::from_secs(5), follower.next())
        .await
        .expect("the follower noticed once the lock expired")
        .expect("redis");
    assert!(matches!(event, RemoteEvent::Orphaned), "{event:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));
}
