//! HTTP plumbing: bodies (whole, streamed from a blocking task, read by a blocking task),
//! docker's error bodies, query strings and filters.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, io::Error>;
pub type Resp = Response<Body>;

/// A failed request: docker's status and `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// What docker answers for a feature this build does not have (errdefs.NotImplemented).
    pub fn unsupported(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not supported by berth yet"),
        )
    }
    pub fn response(&self) -> Resp {
        json_status(self.status, &json!({ "message": self.message }))
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(e: berth_engine::Error) -> ApiError {
        use berth_engine::ErrorKind as K;
        let status = match e.kind() {
            K::NotFound => StatusCode::NOT_FOUND,
            K::AlreadyExists | K::Conflict => StatusCode::CONFLICT,
            K::InvalidArgument | K::CannotInvoke | K::CommandNotFound => StatusCode::BAD_REQUEST,
            K::PermissionDenied => StatusCode::FORBIDDEN,
            K::Unavailable => StatusCode::NOT_IMPLEMENTED,
            K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.message().to_string())
    }
}

impl From<berth_image::Error> for ApiError {
    fn from(e: berth_image::Error) -> ApiError {
        ApiError::from(berth_engine::Error::from(e))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Empty::new().map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r
}

pub fn bytes(status: StatusCode, content_type: &str, b: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(b.into()).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", content_type.parse().expect("content type"));
    r
}

pub fn json_status(status: StatusCode, v: &Value) -> Resp {
    let mut s = serde_json::to_vec(v).expect("json");
    s.push(b'\n');
    bytes(status, "application/json", s)
}

pub fn json_ok(v: &Value) -> Resp {
    json_status(StatusCode::OK, v)
}

/// A response body fed by a channel (a blocking task writes into it through [`ChanWriter`]).
pub struct ChanBody(pub mpsc::Receiver<Bytes>);

impl HttpBody for ChanBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A streamed response and the writer that feeds it (from a blocking thread).
pub fn streamed(status: StatusCode, content_type: &str) -> (Resp, ChanWriter) {
    let (tx, rx) = mpsc::channel(16);
    let mut r = Response::new(ChanBody(rx).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", content_type.parse().expect("content type"));
    (r, ChanWriter { tx })
}

/// `Write` into a streamed body; fails with BrokenPipe once the client has gone.
#[derive(Clone)]
pub struct ChanWriter {
    pub tx: mpsc::Sender<Bytes>,
}

impl ChanWriter {
    pub fn closed(&self) -> bool {
        self.tx.is_closed()
    }
    pub fn send_json(&mut self, v: &Value) -> io::Result<()> {
        let mut s = serde_json::to_vec(v).expect("json");
        s.push(b'\n');
        self.write_all(&s)
    }
}

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client disconnected"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// docker's 8-byte stream header (stream, 0, 0, 0, size BE) before each chunk of a non-TTY stream.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let l = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

/// Writes docker's multiplexed frames of one stream (1 stdout, 2 stderr), or raw with a TTY.
pub struct MuxWriter {
    pub inner: ChanWriter,
    pub stream: u8,
    pub raw: bool,
}

impl Write for MuxWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.raw {
            return self.inner.write(buf);
        }
        let mut v = Vec::with_capacity(buf.len() + 8);
        v.extend_from_slice(&frame_header(self.stream, buf.len()));
        v.extend_from_slice(buf);
        self.inner.write_all(&v)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The request body as a blocking `Read` (for a tar being loaded, imported or copied in).
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    buf: Bytes,
}

impl BodyReader {
    /// Starts pumping `body` into the reader from an async task.
    pub fn new(mut body: Incoming) -> BodyReader {
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(f) = body.frame().await {
                match f {
                    Ok(f) => {
                        if let Ok(d) = f.into_data() {
                            if tx.send(Ok(d)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("request body: {e}"),
                            )))
                            .await;
                        return;
                    }
                }
            }
        });
        BodyReader {
            rx,
            buf: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.buf = b,
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// Reads a whole (small) request body; limited so a client cannot make us hold gigabytes.
pub async fn read_body(body: Incoming, limit: usize) -> ApiResult<Bytes> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(ApiError::bad(format!("read request body: {e}"))),
    }
}

/// Parses a JSON body; an empty body is `{}`. Nulls are dropped so Go's `null` slices take
/// our defaults.
pub fn parse_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> ApiResult<T> {
    let v: Value = if b.iter().all(|c| c.is_ascii_whitespace()) {
        json!({})
    } else {
        serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?
    };
    serde_json::from_value(strip_nulls(v)).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))
}

pub fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        v => v,
    }
}

/// A parsed query string: every value of each key, percent-decoded.
#[derive(Debug, Default)]
pub struct Query(pub HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            m.entry(decode(k)).or_default().push(decode(v));
        }
        Query(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0.get(k).cloned().unwrap_or_default()
    }
    /// Go's strconv.ParseBool as docker's httputils.BoolValue uses it: "", "0", "false", "no", "off" are false.
    pub fn bool(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "no" | "off" | "none"
            )
        })
    }
    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad(format!("invalid value for {k}: {v:?}"))),
        }
    }
    /// docker's `filters` parameter: `{"key":["v"]}` or the old `{"key":{"v":true}}`.
    pub fn filters(&self) -> ApiResult<Vec<(String, String)>> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(Vec::new());
        };
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad(format!("invalid filters: {e}")))?;
        let Value::Object(m) = v else {
            return Err(ApiError::bad("invalid filters: not an object"));
        };
        let mut out = Vec::new();
        for (k, v) in m {
            match v {
                Value::Array(a) => out.extend(
                    a.into_iter()
                        .filter_map(|x| x.as_str().map(|s| (k.clone(), s.to_string()))),
                ),
                Value::Object(o) => out.extend(
                    o.into_iter()
                        .filter(|(_, b)| b.as_bool() == Some(true))
                        .map(|(s, _)| (k.clone(), s)),
                ),
                _ => return Err(ApiError::bad(format!("invalid filters: bad value for {k}"))),
            }
        }
        Ok(out)
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs engine code on the blocking pool (it does file and process I/O).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request handler failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_filters() {
        let q = Query::parse(Some(
            "all=1&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D&names=a&names=b+c&x=%zz",
        ));
        assert!(q.bool("all"));
        assert!(!q.bool("size"));
        assert_eq!(q.all("names"), ["a", "b c"]);
        assert_eq!(
            q.filters().unwrap(),
            [("status".to_string(), "exited".to_string())]
        );
        assert_eq!(q.get("x"), Some("%zz"));
        let old = Query::parse(Some(
            "filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D",
        ));
        assert_eq!(
            old.filters().unwrap(),
            [("dangling".to_string(), "true".to_string())]
        );
        assert!(Query::parse(Some("filters=nope")).filters().is_err());
    }

    #[test]
    fn json_nulls_and_errors() {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct T {
            a: Vec<String>,
        }
        let t: T = parse_json(br#"{"a": null, "b": 1}"#).unwrap();
        assert!(t.a.is_empty());
        let e = parse_json::<T>(b"{not json").err().unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(frame_header(2, 258), [2, 0, 0, 0, 0, 0, 1, 2]);
    }
}
