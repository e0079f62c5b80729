//! Results that background tasks publish once, awaited by name: the shape of every "start it
//! now, wait for it later" build of a run (the tests' `[acceptance] build`, a Serverless
//! service's `[package] build` started ahead of its compile).

use std::collections::BTreeMap;

use tokio::sync::watch;

/// Named results, each published once by a background task through its [`Publisher`]. Several
/// names may wait for one result (services that share a build).
#[derive(Debug)]
pub struct Awaited<T> {
    by_name: BTreeMap<String, watch::Receiver<Option<T>>>,
}

/// Publishes one result of an [`Awaited`].
#[derive(Debug)]
pub struct Publisher<T>(watch::Sender<Option<T>>);

impl<T> Publisher<T> {
    /// Publishes the result: every name that waits for it wakes.
    pub fn publish(self, result: T) {
        let _ = self.0.send(Some(result));
    }
}

impl<T> Default for Awaited<T> {
    fn default() -> Self {
        Awaited {
            by_name: BTreeMap::new(),
        }
    }
}

impl<T: Clone> Awaited<T> {
    /// A new result that `name` waits for, and its publisher.
    pub fn expect(&mut self, name: &str) -> Publisher<T> {
        let (tx, rx) = watch::channel(None);
        self.by_name.insert(name.to_string(), rx);
        Publisher(tx)
    }

    /// `name` waits for the result `publisher` publishes, as the names before it do.
    pub fn share(&mut self, name: &str, publisher: &Publisher<T>) {
        self.by_name
            .insert(name.to_string(), publisher.0.subscribe());
    }

    /// Whether no name waits for anything.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether `name` waits for a result.
    pub fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The names that wait for a result.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether `name`'s result is still to come.
    pub fn pending(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|rx| rx.borrow().is_none())
    }

    /// `name`'s result, once published; `None` when `name` waits for none, or its publisher
    /// was dropped unpublished (a task that was lost).
    pub async fn wait(&self, name: &str) -> Option<T> {
        let mut rx = self.by_name.get(name)?.clone();
        let done = rx.wait_for(Option::is_some).await.ok()?;
        done.clone()
    }

    /// Waits for every result still to come.
    pub async fn finish(&self) {
        for name in self.by_name.keys() {
            let _ = self.wait(name).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shared_result_wakes_every_name_and_a_lost_one_gives_none() {
        let mut a: Awaited<u32> = Awaited::default();
        assert!(a.is_empty());
        let first = a.expect("api");
        a.share("web", &first);
        let lost = a.expect("jobs");
        assert!(a.has("web") && !a.has("db"));
        assert_eq!(a.names().collect::<Vec<_>>(), ["api", "jobs", "web"]);
        assert!(a.pending("api") && a.pending("web"));
        let task = tokio::spawn(async move {
            tokio::task::yield_now().await;
            first.publish(7);
        });
        assert_eq!(a.wait("web").await, Some(7));
        assert_eq!(a.wait("api").await, Some(7));
        task.await.unwrap();
        assert!(!a.pending("api"));
        drop(lost);
        assert_eq!(a.wait("jobs").await, None, "its task was lost");
        assert_eq!(a.wait("db").await, None, "it waits for nothing");
        a.finish().await;
    }
}
