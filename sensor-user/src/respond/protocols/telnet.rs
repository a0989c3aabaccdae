//! Telnet: option negotiation first (Mirai-family bots read an IAC before they send anything),
//! then `login:` / `Password:` rounds; every attempt is recorded and refused.
use crate::respond::conn::{Conn, MAX_LINE, Step};

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;

/// IAC WILL ECHO, IAC WILL SUPPRESS-GO-AHEAD, IAC DO NAWS: what a Linux telnetd sends first.
const NEGOTIATION: [u8; 9] = [IAC, 251, 1, IAC, 251, 3, IAC, 253, 31];

/// How long the client may take to answer the negotiation before the prompt goes out.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The telnet reader's state between bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    #[default]
    Data,
    /// After IAC.
    Iac,
    /// After IAC WILL/WONT/DO/DONT: the option byte.
    Opt,
    /// Inside IAC SB … IAC SE.
    Sub,
    SubIac,
    /// After a CR: a following LF or NUL belongs to it.
    Cr,
}

/// Splits the data of a telnet stream into lines, dropping negotiation.
#[derive(Debug, Default)]
pub struct LineReader {
    state: State,
    line: Vec<u8>,
}

impl LineReader {
    /// Feeds bytes; returns how many were used and a complete line, if one ended.
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<Vec<u8>>) {
        for (i, &b) in data.iter().enumerate() {
            let (next, end) = match (self.state, b) {
                (State::Iac, IAC) => {
                    self.line.push(IAC);
                    (State::Data, false)
                }
                (State::Iac, 251..=254) => (State::Opt, false),
                (State::Iac, SB) => (State::Sub, false),
                (State::Iac | State::Opt, _) => (State::Data, false),
                (State::Sub, IAC) => (State::SubIac, false),
                (State::Sub, _) => (State::Sub, false),
                (State::SubIac, SE) => (State::Data, false),
                (State::SubIac, _) => (State::Sub, false),
                (State::Cr, b'\n' | 0) => (State::Data, false),
                (State::Data | State::Cr, IAC) => (State::Iac, false),
                (State::Data | State::Cr, b'\r') => (State::Cr, true),
                (State::Data, b'\n') => (State::Data, true),
                (State::Data, 0) => (State::Data, false),
                (State::Data | State::Cr, _) => {
                    self.line.push(b);
                    (State::Data, false)
                }
            };
            self.state = next;
            if end || self.line.len() >= MAX_LINE {
                return (i + 1, Some(std::mem::take(&mut self.line)));
            }
        }
        (data.len(), None)
    }
}

async fn read_line(c: &mut Conn<'_>, r: &mut LineReader) -> Step<Vec<u8>> {
    loop {
        let (used, line) = r.feed(c.buffered());
        c.consume(used);
        if let Some(l) = line {
            return Ok(l);
        }
        c.fill().await?;
    }
}

/// Serves login rounds until the client stops or reaches the attempt cap.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    c.send(&NEGOTIATION).await?;
    // As a real telnetd: the prompt follows the client's answers to the negotiation (clients
    // such as hydra drop what arrives with the options they answer).
    if c.speaks_within(ANSWER_WAIT).await? {
        c.read_within(ANSWER_WAIT / 10).await?;
    }
    let mut r = LineReader::default();
    loop {
        c.send(c.cfg.banners.telnet_login.as_bytes()).await?;
        let user = read_line(c, &mut r).await?;
        c.send(b"Password: ").await?;
        let pass = read_line(c, &mut r).await?;
        c.credential("password", &user, &pass)?;
        c.send(b"\r\nLogin incorrect\r\n").await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut r = LineReader::default();
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (used, line) = r.feed(rest);
            out.extend(line);
            rest = &rest[used..];
        }
        out
    }

    #[test]
    fn negotiation_is_dropped_and_line_ends_are_any() {
        let got = lines(
            b"\xff\xfc\x01\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0root\r\n\r\nadmin\r\0x\xff\xffy\n",
        );
        assert_eq!(
            got,
            [
                b"root".to_vec(),
                b"".to_vec(),
                b"admin".to_vec(),
                b"x\xffy".to_vec()
            ]
        );
        // A CR at the end of one read and the LF at the start of the next are one line end.
        let mut r = LineReader::default();
        assert_eq!(r.feed(b"user\r"), (5, Some(b"user".to_vec())));
        assert_eq!(r.feed(b"\npass\r\n"), (6, Some(b"pass".to_vec())));
    }
}
