//! What reached the CRM: the double keeps the last requests so tests can assert on exactly what
//! the proxy forwarded (headers stripped? body filtered?).
//!
//! Bounded twice, because benches push millions of requests through: at most
//! [`MAX_REQUESTS`] entries, and each stored body is cut at [`MAX_BODY`] bytes.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

use super::ReceivedRequest;

/// Oldest entries are dropped beyond this many requests.
pub(crate) const MAX_REQUESTS: usize = 10_000;
/// Stored request bodies are truncated to this many bytes.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// A std `Mutex`, not a tokio one: no `.await` happens while it is held.
#[derive(Default)]
pub(crate) struct Recorder {
    requests: Mutex<VecDeque<ReceivedRequest>>,
}

impl Recorder {
    pub fn record(&self, mut request: ReceivedRequest) {
        if request.body.len() > MAX_BODY {
            request.body = request.body.slice(..MAX_BODY);
        }
        let mut requests = self.lock();
        if requests.len() >= MAX_REQUESTS {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub fn snapshot(&self) -> Vec<ReceivedRequest> {
        self.lock().iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// A poisoned lock only means a panic elsewhere; the queue itself is still consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ReceivedRequest>> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Cheap copy of the body for the recorder (a `Bytes` clone is a refcount bump).
pub(crate) fn capped(body: &Bytes) -> Bytes {
    if body.len() > MAX_BODY {
        body.slice(..MAX_BODY)
    } else {
        body.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: usize, body: Bytes) -> ReceivedRequest {
        ReceivedRequest {
            method: http::Method::GET,
            path_and_query: format!("/r/{n}"),
            headers: http::HeaderMap::new(),
            body,
        }
    }

    #[test]
    fn keeps_only_the_newest_and_caps_bodies() {
        let r = Recorder::default();
        for n in 0..MAX_REQUESTS + 5 {
            r.record(req(n, Bytes::new()));
        }
        let all = r.snapshot();
        assert_eq!(all.len(), MAX_REQUESTS);
        assert_eq!(all[0].path_and_query, "/r/5");
        r.clear();
        r.record(req(0, Bytes::from(vec![b'a'; MAX_BODY + 10])));
        assert_eq!(r.snapshot()[0].body.len(), MAX_BODY);
    }
}
