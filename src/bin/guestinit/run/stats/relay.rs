//! The guest's one stream, and whose turn it is to use it: each client's
//! exchange (`exchange`) in its turn (`turns`), so replies and requests
//! never cross.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use super::exchange::{Delivered, Guest};
use super::turns::Turns;

pub struct Relay {
    turns: Turns,
    guest: Mutex<Guest>,
}

impl Relay {
    /// Over `link`, the host's end of the stats port.
    pub fn new(link: UnixStream) -> io::Result<Relay> {
        Ok(Relay {
            turns: Turns::default(),
            guest: Mutex::new(Guest::new(link)?),
        })
    }

    /// `request` to the guest and its reply to `client`, in this client's
    /// turn.
    pub fn exchange(&self, request: &[u8], client: &mut UnixStream) -> Delivered {
        let _turn = self.turns.wait();
        let mut guest = self.guest.lock().unwrap_or_else(|e| e.into_inner());
        guest.exchange(request, client)
    }
}
