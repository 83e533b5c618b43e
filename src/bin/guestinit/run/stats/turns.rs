//! First come, first served: the clients' exchanges with the guest, one at
//! a time in the order they asked. A plain mutex would do one at a time,
//! but a client that sends its requests back to back could take it again
//! and again while another waits.

use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Default)]
pub struct Turns {
    /// (the next ticket to hand out, the ticket being served)
    tickets: Mutex<(u64, u64)>,
    changed: Condvar,
}

/// The holder's turn; the next ticket's once dropped.
pub struct Turn<'a> {
    turns: &'a Turns,
}

impl Turns {
    /// Waits for every turn asked for before this one to end.
    pub fn wait(&self) -> Turn<'_> {
        let mut tickets = self.lock();
        let mine = tickets.0;
        tickets.0 += 1;
        while tickets.1 != mine {
            tickets = self
                .changed
                .wait(tickets)
                .unwrap_or_else(|e| e.into_inner());
        }
        Turn { turns: self }
    }

    fn lock(&self) -> MutexGuard<'_, (u64, u64)> {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.lock().1 += 1;
        self.turns.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn turns_are_served_in_the_order_they_were_asked_for() {
        let turns = Arc::new(Turns::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = turns.wait();
        let waiters: Vec<_> = (0..4)
            .map(|i| {
                let (turns, order) = (Arc::clone(&turns), Arc::clone(&order));
                let waiter = std::thread::spawn(move || {
                    let _turn = turns.wait();
                    order.lock().unwrap().push(i);
                });
                // Each asks after the one before (the ticket is taken at once).
                std::thread::sleep(Duration::from_millis(50));
                waiter
            })
            .collect();
        assert!(order.lock().unwrap().is_empty(), "all wait for the first");
        drop(first);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    }
}
