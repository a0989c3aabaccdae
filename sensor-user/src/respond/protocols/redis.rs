//! Redis: RESP arrays and inline commands, each recorded; AUTH recorded and refused
//! (WRONGPASS); PING, INFO and QUIT answered as a server would, every other command `+OK` so
//! the client shows the rest of its chain (CONFIG SET dir, SLAVEOF, MODULE LOAD …). Nothing is
//! executed and no replication connection is ever made.
use crate::respond::conn::{Conn, Step};

/// Commands that start a Redis exploit chain, and their tags.
const TAGGED: [(&[u8], &str); 6] = [
    (b"CONFIG", "redis_config"),
    (b"SLAVEOF", "redis_replicaof"),
    (b"REPLICAOF", "redis_replicaof"),
    (b"MODULE", "redis_module"),
    (b"EVAL", "redis_eval"),
    (b"FLUSHALL", "redis_flushall"),
];

/// Whether `data` starts like a RESP array or a known inline command.
pub fn looks_like(data: &[u8]) -> bool {
    if data.len() >= 2 && data[0] == b'*' && data[1].is_ascii_digit() {
        return true;
    }
    let word: Vec<u8> = data
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .map(u8::to_ascii_uppercase)
        .collect();
    let ends = matches!(data.get(word.len()), Some(b' ' | b'\r' | b'\n'));
    ends && [
        &b"PING"[..],
        b"INFO",
        b"AUTH",
        b"CONFIG",
        b"SLAVEOF",
        b"REPLICAOF",
        b"MODULE",
        b"KEYS",
        b"FLUSHALL",
        b"HELLO",
    ]
    .contains(&word.as_slice())
}

/// What the buffer holds.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A command's arguments and the bytes it took.
    Command(Vec<Vec<u8>>, usize),
    /// Not all of the next command yet.
    Incomplete,
    /// Not RESP.
    Malformed,
}

/// The next command in the buffer.
pub fn command(b: &[u8]) -> Parsed {
    match parse(b) {
        Ok(Some((args, used))) => Parsed::Command(args, used),
        Ok(None) => Parsed::Incomplete,
        Err(Malformed) => Parsed::Malformed,
    }
}

struct Malformed;

type Args = (Vec<Vec<u8>>, usize);

fn parse(b: &[u8]) -> Result<Option<Args>, Malformed> {
    fn line(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let i = b.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((&b[at..at + i], at + i + 2))
    }
    if b.first() != Some(&b'*') {
        let Some(i) = b.iter().position(|&x| x == b'\n') else {
            return Ok(None);
        };
        let l = b[..i].strip_suffix(b"\r").unwrap_or(&b[..i]);
        let args = l
            .split(|&x| x == b' ')
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return Ok(Some((args, i + 1)));
    }
    let Some((n, mut at)) = line(b, 1) else {
        return Ok(None);
    };
    let n: usize = std::str::from_utf8(n)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed)?;
    if n > 1024 {
        return Err(Malformed);
    }
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        if at >= b.len() {
            return Ok(None);
        }
        if b[at] != b'$' {
            return Err(Malformed);
        }
        let Some((len, next)) = line(b, at + 1) else {
            return Ok(None);
        };
        let len: usize = std::str::from_utf8(len)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Malformed)?;
        if len > 64 << 10 {
            return Err(Malformed);
        }
        if b.len() < next + len + 2 {
            return Ok(None);
        }
        args.push(b[next..next + len].to_vec());
        at = next + len + 2;
    }
    Ok(Some((args, at)))
}

fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{s}\r\n", s.len()).into_bytes()
}

/// Serves commands until QUIT, the client stops or the attempt cap.
pub async fn serve(c: &mut Conn<'_>) -> Step<()> {
    loop {
        let (args, used) = loop {
            match command(c.buffered()) {
                Parsed::Command(args, used) => break (args, used),
                Parsed::Incomplete => c.fill().await?,
                Parsed::Malformed => {
                    c.tag("redis_malformed");
                    return c.send(b"-ERR Protocol error\r\n").await;
                }
            }
        };
        c.consume(used);
        let Some(name) = args.first().map(|a| a.to_ascii_uppercase()) else {
            continue;
        };
        if let Some((_, tag)) = TAGGED.iter().find(|(n, _)| *n == name.as_slice()) {
            c.tag(tag);
        }
        if name == b"AUTH" {
            let (user, pass) = match args.len() {
                2 => (&b"default"[..], args[1].as_slice()),
                n if n >= 3 => (args[1].as_slice(), args[2].as_slice()),
                _ => (&b""[..], &b""[..]),
            };
            c.credential("password", user, pass)?;
            c.send(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
                .await?;
            continue;
        }
        c.command(&args.join(&b' '));
        match name.as_slice() {
            b"PING" => c.send(b"+PONG\r\n").await?,
            b"INFO" => {
                let info = format!(
                    "# Server\r\nredis_version:{}\r\nredis_mode:standalone\r\nos:Linux 5.10.0-28-amd64 x86_64\r\narch_bits:64\r\ntcp_port:{}\r\n",
                    c.cfg.banners.redis_version, c.rec.dst_port
                );
                c.send(&bulk(&info)).await?;
            }
            b"QUIT" => {
                c.send(b"+OK\r\n").await?;
                return Ok(());
            }
            _ => c.send(b"+OK\r\n").await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_and_inline_commands() {
        let b = b"*3\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$3\r\ndir\r\nPING\r\n";
        let Parsed::Command(args, used) = command(b) else {
            panic!("a command");
        };
        assert_eq!(args, [b"CONFIG".to_vec(), b"SET".to_vec(), b"dir".to_vec()]);
        assert_eq!(
            command(&b[used..]),
            Parsed::Command(vec![b"PING".to_vec()], 6)
        );
        assert_eq!(command(b"*2\r\n$4\r\nAUTH\r\n$3\r\nab"), Parsed::Incomplete);
        assert_eq!(command(b"*2\r\n+x\r\n"), Parsed::Malformed);
        assert_eq!(command(b"*99999\r\n"), Parsed::Malformed);
        assert!(looks_like(b"*1\r\n") && looks_like(b"ping\r\n") && !looks_like(b"PINGU"));
    }
}
