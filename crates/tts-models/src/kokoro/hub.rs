//! Fetching the official Kokoro release (`hexgrad/Kokoro-82M`: `kokoro-v1_0.pth`, `config.json`,
//! `voices/<name>.pt`) from the Hugging Face hub into the directory layout that
//! [`super::KokoroModel::load`] reads.
//!
//! The file plan and the atomic placement are plain std code, built always (and unit-tested without
//! network); the download itself goes through `hf-hub`'s blocking client and its cache (so
//! `HF_HOME`, `HF_ENDPOINT` and `HF_TOKEN` behave as in the Python `huggingface_hub`) and needs the
//! `hub` cargo feature.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ModelError;

/// The official release on the hub.
pub const DEFAULT_REPO: &str = "hexgrad/Kokoro-82M";
/// The PyTorch checkpoint of the release.
pub const WEIGHTS_FILE: &str = "kokoro-v1_0.pth";
/// Model hyper-parameters and the phoneme vocabulary.
pub const CONFIG_FILE: &str = "config.json";
/// What `--voices` takes to mean every `voices/*.pt` of the repository.
pub const ALL_VOICES: &str = "all";

/// The repository files to fetch, in placement order: `config.json`, the voices, then the
/// checkpoint last, so an interrupted fetch never leaves a `.pth` that `load` would pick up with
/// its companions missing.
///
/// `voices` lists voice names (`af_heart`) or holds [`ALL_VOICES`]; `listing` is the repository's
/// file list when known (required to expand `all`, and used to reject unknown names early).
pub fn plan_files(
    voices: &[String],
    listing: Option<&[String]>,
) -> Result<Vec<String>, ModelError> {
    let wants_all = voices.iter().any(|v| v.trim() == ALL_VOICES);
    let mut voice_files: Vec<String> = if wants_all {
        let listing = listing.ok_or_else(|| {
            ModelError::Hub(
                "`all` voices needs the repository file list, which is unavailable".into(),
            )
        })?;
        let mut found: Vec<String> = listing
            .iter()
            .filter(|f| {
                f.strip_prefix("voices/")
                    .is_some_and(|name| name.ends_with(".pt") && !name.contains('/'))
            })
            .cloned()
            .collect();
        found.sort();
        found
    } else {
        let mut names = Vec::new();
        for voice in voices.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            validate_voice_name(voice)?;
            let file = format!("voices/{voice}.pt");
            if !names.contains(&file) {
                names.push(file);
            }
        }
        names
    };
    if voice_files.is_empty() {
        return Err(ModelError::InvalidInput {
            field: "voices",
            message: "no voice to fetch: name at least one (af_heart,bf_emma) or `all`".into(),
        });
    }
    if let Some(listing) = listing {
        for required in [CONFIG_FILE, WEIGHTS_FILE] {
            if !listing.iter().any(|f| f == required) {
                return Err(ModelError::Hub(format!(
                    "the repository has no {required}; is it a Kokoro v1.0 release?"
                )));
            }
        }
        let missing: Vec<&str> = voice_files
            .iter()
            .filter(|f| !listing.contains(f))
            .map(|f| voice_name(f))
            .collect();
        if !missing.is_empty() {
            return Err(ModelError::UnknownVoice(missing.join(",")));
        }
    }
    let mut files = vec![CONFIG_FILE.to_string()];
    files.append(&mut voice_files);
    files.push(WEIGHTS_FILE.to_string());
    Ok(files)
}

/// `voices/af_heart.pt` → `af_heart`.
fn voice_name(file: &str) -> &str {
    file.strip_prefix("voices/")
        .and_then(|f| f.strip_suffix(".pt"))
        .unwrap_or(file)
}

/// Voice names become paths: keep them to the characters the release uses.
fn validate_voice_name(voice: &str) -> Result<(), ModelError> {
    let ok = voice
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !voice.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ModelError::InvalidInput {
            field: "voices",
            message: format!("bad voice name {voice:?}: letters, digits, `_` and `-` only"),
        })
    }
}

/// Places `files` (`(repository path, local source)`) under `dest` with the same relative paths.
/// Each file is hard-linked (same filesystem as the hub cache) or copied and fsynced to a temporary
/// name in its target directory, then renamed, so `dest` never holds a partial file.
pub fn place_files(files: &[(String, PathBuf)], dest: &Path) -> Result<PathBuf, ModelError> {
    // `load` prefers these over `voices/*.pt` / `config.json`: mixing them with the release would
    // silently load other voices.
    for shadow in ["voices_ja.npz", "vocab.json"] {
        if dest.join(shadow).exists() {
            return Err(ModelError::InvalidInput {
                field: "dest",
                message: format!(
                    "{} holds {shadow}, which KokoroModel::load prefers over the hub files; \
                     choose another directory (e.g. models/hub/kokoro)",
                    dest.display()
                ),
            });
        }
    }
    for (rel, source) in files {
        if rel.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(ModelError::InvalidInput {
                field: "files",
                message: format!("unsafe repository path {rel:?}"),
            });
        }
        let target = dest.join(rel);
        let dir = target.parent().unwrap_or(dest);
        std::fs::create_dir_all(dir)?;
        let file_name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file");
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        // hf-hub's snapshot entries are symlinks into blobs/: link the blob itself.
        let blob = std::fs::canonicalize(source)?;
        if std::fs::hard_link(&blob, &tmp).is_err() {
            copy_synced(&blob, &tmp)?;
        }
        if let Err(e) = std::fs::rename(&tmp, &target) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        sync_dir(dir);
    }
    Ok(dest.to_path_buf())
}

fn copy_synced(from: &Path, to: &Path) -> Result<(), ModelError> {
    let mut reader = std::fs::File::open(from)?;
    let mut writer = std::fs::File::create(to)?;
    let copied = std::io::copy(&mut reader, &mut writer).and_then(|_| {
        writer.flush()?;
        writer.sync_all()
    });
    if let Err(e) = copied {
        let _ = std::fs::remove_file(to);
        return Err(e.into());
    }
    Ok(())
}

/// Makes the rename durable where the platform allows opening a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Where and how to reach the hub; `None` fields come from the environment as hf-hub reads it
/// (`HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN` / the stored token).
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    pub endpoint: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub progress: bool,
}

/// Downloads `repo` at `revision` (default `main`) with `voices` (names or `all`) through hf-hub's
/// cache and places the files in `dest` in the layout [`super::KokoroModel::load`] expects.
/// Returns `dest`.
#[cfg(feature = "hub")]
pub fn download_kokoro(
    repo: &str,
    revision: Option<&str>,
    voices: &[String],
    dest: &Path,
) -> Result<PathBuf, ModelError> {
    download_kokoro_with(
        repo,
        revision,
        voices,
        dest,
        &HubOptions {
            progress: true,
            ..HubOptions::default()
        },
    )
}

/// [`download_kokoro`] with an explicit endpoint / cache (tests, embedding).
#[cfg(feature = "hub")]
pub fn download_kokoro_with(
    repo: &str,
    revision: Option<&str>,
    voices: &[String],
    dest: &Path,
    opts: &HubOptions,
) -> Result<PathBuf, ModelError> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    // Bad names fail here, before any request.
    if !voices.iter().any(|v| v.trim() == ALL_VOICES) {
        plan_files(voices, None)?;
    }
    let mut builder = ApiBuilder::from_env().with_progress(opts.progress);
    if let Some(endpoint) = &opts.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    if let Some(cache) = &opts.cache_dir {
        builder = builder.with_cache_dir(cache.clone());
    }
    let endpoint = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
        .unwrap_or_else(|| "https://huggingface.co".into());
    let api = builder
        .build()
        .map_err(|e| hub_error(&endpoint, repo, &e))?;
    let hub_repo = match revision {
        Some(rev) => Repo::with_revision(repo.to_string(), RepoType::Model, rev.to_string()),
        None => Repo::new(repo.to_string(), RepoType::Model),
    };
    let api_repo = api.repo(hub_repo.clone());
    // The listing validates names and expands `all`; one request, before any large download.
    let listing: Vec<String> = match api_repo.info() {
        Ok(info) => info.siblings.into_iter().map(|s| s.rfilename).collect(),
        Err(e) => {
            // Offline use: named voices that an earlier fetch left in the hf-hub cache still place.
            let cache = opts
                .cache_dir
                .clone()
                .map(Cache::new)
                .unwrap_or_else(Cache::from_env)
                .repo(hub_repo);
            let cached = plan_files(voices, None).ok().and_then(|files| {
                files
                    .into_iter()
                    .map(|f| cache.get(&f).map(|p| (f, p)))
                    .collect::<Option<Vec<_>>>()
            });
            return match cached {
                Some(files) => {
                    tracing::warn!(repo, error = %e, "hub unreachable; placing the files from the hf-hub cache");
                    place_files(&files, dest)
                }
                None => Err(hub_error(&endpoint, repo, &e)),
            };
        }
    };
    let files = plan_files(voices, Some(&listing))?;
    let mut fetched = Vec::with_capacity(files.len());
    for file in files {
        tracing::info!(repo, file = %file, "fetching from the hub");
        let local = api_repo
            .get(&file)
            .map_err(|e| hub_error(&endpoint, &format!("{repo}/{file}"), &e))?;
        fetched.push((file, local));
    }
    place_files(&fetched, dest)
}

#[cfg(feature = "hub")]
fn hub_error(endpoint: &str, what: &str, err: &hf_hub::api::sync::ApiError) -> ModelError {
    ModelError::Hub(format!(
        "cannot fetch {what} from {endpoint}: {err}. Check network access to the hub, set \
         HF_ENDPOINT to a reachable mirror, HF_TOKEN for gated access. Offline, files already in \
         the hf-hub cache (HF_HOME) are used when every named voice is there (not with `all`); \
         without them use the int8 ONNX export instead (scripts/fetch_models.py, or copy kokoro-v1_0.pth, config.json and \
         voices/*.pt into the directory by hand)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn listing() -> Vec<String> {
        names(&[
            ".gitattributes",
            "README.md",
            "config.json",
            "kokoro-v1_0.pth",
            "voices/af_heart.pt",
            "voices/bf_emma.pt",
            "voices/jf_alpha.pt",
            "samples/HEARME.wav",
        ])
    }

    #[test]
    fn named_voices_plan_config_voices_then_weights_last() {
        let files = plan_files(&names(&["af_heart", " bf_emma", "af_heart"]), None).unwrap();
        assert_eq!(
            files,
            names(&[
                "config.json",
                "voices/af_heart.pt",
                "voices/bf_emma.pt",
                "kokoro-v1_0.pth"
            ])
        );
    }

    #[test]
    fn all_expands_to_every_voice_pt_of_the_listing() {
        let files = plan_files(&names(&["all"]), Some(&listing())).unwrap();
        assert_eq!(
            files,
            names(&[
                "config.json",
                "voices/af_heart.pt",
                "voices/bf_emma.pt",
                "voices/jf_alpha.pt",
                "kokoro-v1_0.pth"
            ])
        );
    }

    #[test]
    fn all_without_a_listing_is_an_error() {
        assert!(matches!(
            plan_files(&names(&["all"]), None),
            Err(ModelError::Hub(_))
        ));
    }

    #[test]
    fn unknown_voice_in_listing_is_named() {
        let err = plan_files(&names(&["af_heart", "zz_nobody"]), Some(&listing())).unwrap_err();
        assert!(
            matches!(&err, ModelError::UnknownVoice(v) if v == "zz_nobody"),
            "{err}"
        );
    }

    #[test]
    fn repository_without_checkpoint_is_rejected() {
        let mut list = listing();
        list.retain(|f| f != WEIGHTS_FILE);
        let err = plan_files(&names(&["af_heart"]), Some(&list)).unwrap_err();
        assert!(err.to_string().contains(WEIGHTS_FILE), "{err}");
    }

    #[test]
    fn empty_or_path_like_voice_names_are_rejected() {
        assert!(matches!(
            plan_files(&names(&["", " "]), None),
            Err(ModelError::InvalidInput {
                field: "voices",
                ..
            })
        ));
        for bad in ["../etc/passwd", "a/b", "-x"] {
            assert!(
                matches!(
                    plan_files(&names(&[bad]), None),
                    Err(ModelError::InvalidInput {
                        field: "voices",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tts-hub-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn place_files_writes_the_load_layout_and_leaves_no_temp_files() {
        let root = scratch("place");
        let cache = root.join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let mut files = Vec::new();
        for (rel, body) in [
            ("config.json", "{}"),
            ("voices/af_heart.pt", "voice"),
            ("kokoro-v1_0.pth", "weights"),
        ] {
            let src = cache.join(rel.replace('/', "_"));
            std::fs::write(&src, body).unwrap();
            files.push((rel.to_string(), src));
        }
        let dest = root.join("models/hub/kokoro");
        // A stale file from an earlier fetch is replaced, not appended to.
        std::fs::create_dir_all(dest.join("voices")).unwrap();
        std::fs::write(dest.join("voices/af_heart.pt"), "old voice, longer").unwrap();

        assert_eq!(place_files(&files, &dest).unwrap(), dest);
        assert_eq!(
            std::fs::read_to_string(dest.join("config.json")).unwrap(),
            "{}"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("voices/af_heart.pt")).unwrap(),
            "voice"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join(WEIGHTS_FILE)).unwrap(),
            "weights"
        );
        for dir in [dest.clone(), dest.join("voices")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!name.ends_with(".tmp"), "temp file left: {name}");
            }
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn place_files_follows_cache_symlinks_to_the_blob() {
        let root = scratch("symlink");
        let blob = root.join("blob");
        std::fs::write(&blob, "weights").unwrap();
        let link = root.join("snapshot-link");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&blob, &link).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, &link).unwrap();
        let dest = root.join("dest");
        place_files(&[(WEIGHTS_FILE.to_string(), link)], &dest).unwrap();
        let placed = dest.join(WEIGHTS_FILE);
        assert!(!std::fs::symlink_metadata(&placed)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(placed).unwrap(), "weights");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn place_files_refuses_a_dir_whose_npz_voices_would_shadow_the_release() {
        let root = scratch("shadow");
        std::fs::write(root.join("voices_ja.npz"), "npz").unwrap();
        let src = root.join("src");
        std::fs::write(&src, "{}").unwrap();
        let err = place_files(&[(CONFIG_FILE.to_string(), src)], &root).unwrap_err();
        assert!(
            matches!(&err, ModelError::InvalidInput { field: "dest", .. }),
            "{err}"
        );
        assert!(!root.join(CONFIG_FILE).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn place_files_rejects_parent_paths() {
        let root = scratch("parent");
        let src = root.join("src");
        std::fs::write(&src, "x").unwrap();
        let err = place_files(&[("../evil".to_string(), src)], &root.join("dest")).unwrap_err();
        assert!(matches!(
            err,
            ModelError::InvalidInput { field: "files", .. }
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(feature = "hub")]
    #[test]
    fn unreachable_endpoint_fails_fast_naming_hf_endpoint() {
        // A port that was just free: the connection is refused at once, nothing waits on a timeout.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = scratch("offline");
        let endpoint = format!("http://127.0.0.1:{port}");
        let err = download_kokoro_with(
            DEFAULT_REPO,
            None,
            &names(&["af_heart"]),
            &root.join("dest"),
            &HubOptions {
                endpoint: Some(endpoint.clone()),
                cache_dir: Some(root.join("hf-cache")),
                progress: false,
            },
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ModelError::Hub(_)), "{msg}");
        assert!(msg.contains(&endpoint), "{msg}");
        assert!(msg.contains("HF_ENDPOINT"), "{msg}");
        assert!(msg.contains("ONNX"), "{msg}");
        assert!(!root.join("dest").exists(), "nothing placed on failure");

        // Bad voice names are input errors, reported without contacting the endpoint.
        let err = download_kokoro_with(
            DEFAULT_REPO,
            None,
            &names(&["../x"]),
            &root.join("dest"),
            &HubOptions {
                endpoint: Some(endpoint),
                cache_dir: Some(root.join("hf-cache")),
                progress: false,
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::InvalidInput {
                    field: "voices",
                    ..
                }
            ),
            "{err}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(feature = "hub")]
    #[test]
    fn unreachable_endpoint_places_named_voices_already_in_the_hf_cache() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = scratch("cached");
        // hf-hub's cache layout: models--<org>--<name>/{refs/main, snapshots/<commit>/<file>}.
        let repo_dir = root.join("hf-cache/models--hexgrad--Kokoro-82M");
        let snapshot = repo_dir.join("snapshots/abc123");
        std::fs::create_dir_all(snapshot.join("voices")).unwrap();
        std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
        std::fs::write(repo_dir.join("refs/main"), "abc123").unwrap();
        for (rel, body) in [
            (CONFIG_FILE, "{}"),
            ("voices/af_heart.pt", "voice"),
            (WEIGHTS_FILE, "weights"),
        ] {
            std::fs::write(snapshot.join(rel), body).unwrap();
        }
        let opts = HubOptions {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            cache_dir: Some(root.join("hf-cache")),
            progress: false,
        };
        let dest = root.join("dest");
        let placed =
            download_kokoro_with(DEFAULT_REPO, None, &names(&["af_heart"]), &dest, &opts).unwrap();
        assert_eq!(placed, dest);
        assert_eq!(
            std::fs::read_to_string(dest.join("voices/af_heart.pt")).unwrap(),
            "voice"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join(WEIGHTS_FILE)).unwrap(),
            "weights"
        );
        // A voice the cache lacks still needs the hub.
        let err = download_kokoro_with(DEFAULT_REPO, None, &names(&["bf_emma"]), &dest, &opts)
            .unwrap_err();
        assert!(matches!(err, ModelError::Hub(_)), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
