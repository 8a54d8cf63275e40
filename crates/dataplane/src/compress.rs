//! Response compression, negotiated with `Accept-Encoding`.

use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use futures_util::TryStreamExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::{BodyDataStream, BodyExt, StreamBody};
use snapshot::{CompressionPolicy, Encoding};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::body::{BoxError, UnsyncBody};
use crate::upstream::FromUpstream;

/// The encoding to apply to a response, if any: the route compresses, the
/// client accepts one of the route's encodings, and the response is a
/// compressible type, not already encoded, not too small, and has a body.
pub(crate) fn choose(
    policy: &CompressionPolicy,
    method: &Method,
    accept_encoding: Option<&HeaderValue>,
    status: StatusCode,
    response: &HeaderMap,
) -> Option<Encoding> {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
        || response.contains_key(header::CONTENT_ENCODING)
        || response
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-transform"))
    {
        return None;
    }
    let content_type = response.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !policy.compresses(content_type) {
        return None;
    }
    let length = response
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n < policy.min_bytes) {
        return None;
    }
    policy.negotiate(accept_encoding?.to_str().ok()?)
}

/// Compresses `body` with `encoding`, fixing up the headers.
pub(crate) fn compress(
    body: FromUpstream,
    encoding: Encoding,
    headers: &mut HeaderMap,
) -> UnsyncBody {
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.as_str()),
    );
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    // A strong validator no longer describes the bytes sent.
    if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok())
        && !etag.starts_with("W/")
        && let Ok(weak) = HeaderValue::try_from(format!("W/{etag}"))
    {
        headers.insert(header::ETAG, weak);
    }
    let reader = StreamReader::new(BodyDataStream::new(body).map_err(std::io::Error::other));
    match encoding {
        Encoding::Gzip => stream(GzipEncoder::new(reader)),
        Encoding::Br => stream(BrotliEncoder::with_quality(
            reader,
            async_compression::Level::Precise(4),
        )),
        Encoding::Zstd => stream(ZstdEncoder::new(reader)),
    }
}

fn stream<R: tokio::io::AsyncRead + Send + 'static>(reader: R) -> UnsyncBody {
    let frames = ReaderStream::new(reader)
        .map_ok(Frame::data)
        .map_err(|e| -> BoxError { Box::new(e) });
    StreamBody::new(frames).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CompressionPolicy {
        CompressionPolicy {
            encodings: vec![Encoding::Gzip],
            min_bytes: 100,
            content_types: CompressionPolicy::default_content_types(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn compresses_only_what_it_should() {
        let p = policy();
        let gzip = HeaderValue::from_static("gzip");
        let ok = headers(&[
            ("content-type", "application/json"),
            ("content-length", "5000"),
        ]);
        assert_eq!(
            choose(&p, &Method::GET, Some(&gzip), StatusCode::OK, &ok),
            Some(Encoding::Gzip)
        );
        assert_eq!(
            choose(&p, &Method::GET, None, StatusCode::OK, &ok),
            None,
            "not accepted"
        );
        assert_eq!(
            choose(&p, &Method::HEAD, Some(&gzip), StatusCode::OK, &ok),
            None
        );
        assert_eq!(
            choose(&p, &Method::GET, Some(&gzip), StatusCode::NO_CONTENT, &ok),
            None
        );
        let small = headers(&[
            ("content-type", "application/json"),
            ("content-length", "50"),
        ]);
        assert_eq!(
            choose(&p, &Method::GET, Some(&gzip), StatusCode::OK, &small),
            None
        );
        let encoded = headers(&[("content-type", "text/html"), ("content-encoding", "br")]);
        assert_eq!(
            choose(&p, &Method::GET, Some(&gzip), StatusCode::OK, &encoded),
            None
        );
        let image = headers(&[("content-type", "image/png")]);
        assert_eq!(
            choose(&p, &Method::GET, Some(&gzip), StatusCode::OK, &image),
            None
        );
        let no_transform = headers(&[
            ("content-type", "text/html"),
            ("cache-control", "public, no-transform"),
        ]);
        assert_eq!(
            choose(&p, &Method::GET, Some(&gzip), StatusCode::OK, &no_transform),
            None
        );
        let unknown_length = headers(&[("content-type", "text/html")]);
        assert_eq!(
            choose(
                &p,
                &Method::GET,
                Some(&gzip),
                StatusCode::OK,
                &unknown_length
            ),
            Some(Encoding::Gzip)
        );
    }
}
