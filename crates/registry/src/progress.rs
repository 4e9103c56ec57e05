//! What pull and push report per layer, in docker's words; the CLI draws it, the API sends it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    /// Pull: queued behind other downloads.
    Waiting,
    /// Pull: the store has the blob; not fetched.
    AlreadyExists,
    Downloading {
        current: u64,
        total: u64,
    },
    /// A dropped connection: continuing at `at` with a Range request.
    Retrying {
        at: u64,
    },
    DownloadComplete,
    PullComplete,
    /// Push: compressing or about to upload.
    Preparing,
    Pushing {
        current: u64,
        total: u64,
    },
    Pushed,
    /// Push: the registry already has it.
    LayerExists,
    /// Push: mounted from another repository of the same registry.
    Mounted {
        from: String,
    },
}

impl LayerStatus {
    /// Docker's wording for plain (non-terminal) output.
    pub fn text(&self) -> String {
        match self {
            LayerStatus::Waiting => "Waiting".into(),
            LayerStatus::AlreadyExists => "Already exists".into(),
            LayerStatus::Downloading { .. } => "Downloading".into(),
            LayerStatus::Retrying { at } => format!("Retrying from byte {at}"),
            LayerStatus::DownloadComplete => "Download complete".into(),
            LayerStatus::PullComplete => "Pull complete".into(),
            LayerStatus::Preparing => "Preparing".into(),
            LayerStatus::Pushing { .. } => "Pushing".into(),
            LayerStatus::Pushed => "Pushed".into(),
            LayerStatus::LayerExists => "Layer already exists".into(),
            LayerStatus::Mounted { from } => format!("Mounted from {from}"),
        }
    }
}

/// Receives per-layer status; `id` is the first 12 hex digits of the blob digest.
pub trait Progress: Sync {
    fn layer(&self, id: &str, status: LayerStatus);
}

/// What a pull reports besides layers: docker's other progress messages, which the CLI prints
/// as lines and the API sends as JSON.
pub trait PullReport: Progress {
    /// A message about one image (`id`: its tag or digest), or about the whole pull.
    fn status(&self, id: Option<&str>, text: &str);
    /// One candidate's attempt ended, pulled or failed (before the closing messages).
    fn attempt_done(&self) {}
}

pub struct NoProgress;

impl Progress for NoProgress {
    fn layer(&self, _: &str, _: LayerStatus) {}
}

pub(crate) fn short(digest: &str) -> &str {
    let h = digest.strip_prefix("sha256:").unwrap_or(digest);
    &h[..h.len().min(12)]
}
