//! Per-image model work spread over worker threads, each owning its own copy of the model.
//!
//! On the CPU, small convolutions scale badly across threads: on this 2-core machine two images at
//! once, each on single-threaded libtorch, go 1.3-1.5x faster than one image at a time on two
//! threads (`make bench-vision`). Each worker also decodes its own images, so decoding overlaps
//! the other workers' model work. Python cannot do this without one process per worker (the GIL);
//! here it is a thread and a second copy of a few megabytes of weights.
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tch::Device;

use crate::{Error, Result};

/// One worker per core on the CPU; one on a GPU (it parallelises inside each call).
pub fn default_workers(device: Device) -> usize {
    match device {
        Device::Cpu => crate::torch::cpu_budget(),
        _ => 1,
    }
}

/// Models for `workers` threads, each loaded on first use and kept for later calls.
pub struct ModelPool<M> {
    slots: Vec<Mutex<Option<M>>>,
    load: Box<dyn Fn() -> Result<M> + Sync>,
}

impl<M: Send> ModelPool<M> {
    pub fn new(workers: usize, load: impl Fn() -> Result<M> + Sync + 'static) -> Self {
        Self {
            slots: (0..workers.max(1)).map(|_| Mutex::new(None)).collect(),
            load: Box::new(load),
        }
    }

    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// `work` on every item, results in item order. The first error stops the workers (each
    /// finishes the item it is on) and is returned.
    pub fn map<T, R, F>(&self, items: &[T], work: F) -> Result<Vec<R>>
    where
        T: Sync,
        R: Send,
        F: Fn(&mut M, &T) -> Result<R> + Sync,
    {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
        let errors: Mutex<Vec<Error>> = Mutex::new(Vec::new());
        let workers = self.slots.len().min(items.len());
        let previous_threads = tch::get_num_threads();
        std::thread::scope(|scope| {
            for slot in &self.slots[..workers] {
                let (next, failed, results, errors, work) =
                    (&next, &failed, &results, &errors, &work);
                scope.spawn(move || {
                    // One thread per worker whenever the pool has several, even if this call has a
                    // single item: kernels split work by thread count, and a region or an image
                    // must get the same bits whichever call computes it.
                    if self.slots.len() > 1 {
                        tch::set_num_threads(1);
                    }
                    let outcome = (|| -> Result<()> {
                        let mut slot = slot.lock().map_err(|_| {
                            Error::Internal("a model worker panicked earlier".into())
                        })?;
                        if slot.is_none() {
                            *slot = Some((self.load)()?);
                        }
                        let Some(model) = slot.as_mut() else {
                            return Ok(());
                        };
                        while !failed.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else {
                                break;
                            };
                            let result = work(model, item)?;
                            if let Ok(mut cell) = results[i].lock() {
                                *cell = Some(result);
                            }
                        }
                        Ok(())
                    })();
                    if let Err(e) = outcome {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut errors) = errors.lock() {
                            errors.push(e);
                        }
                    }
                });
            }
        });
        tch::set_num_threads(previous_threads);
        if let Some(error) = errors.into_inner().ok().and_then(|mut e| e.pop()) {
            return Err(error);
        }
        results
            .into_iter()
            .map(|cell| {
                cell.into_inner().ok().flatten().ok_or_else(|| {
                    Error::Internal("a model worker stopped without a result".into())
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_and_models_load_once_per_worker() {
        let loads = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = loads.clone();
        let pool = ModelPool::new(2, move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(10usize)
        });
        let items: Vec<usize> = (0..50).collect();
        for _ in 0..3 {
            let out = pool.map(&items, |model, &i| Ok(*model + i)).unwrap();
            assert_eq!(out, (10..60).collect::<Vec<_>>());
        }
        assert!(loads.load(Ordering::Relaxed) <= 2);
    }

    #[test]
    fn the_first_error_is_returned() {
        let pool = ModelPool::new(2, || Ok(()));
        let items: Vec<usize> = (0..20).collect();
        let out = pool.map(&items, |_, &i| {
            if i == 7 {
                Err(Error::Config("item 7 is bad".into()))
            } else {
                Ok(i)
            }
        });
        assert!(matches!(out, Err(Error::Config(m)) if m == "item 7 is bad"));
    }
}
