//! TCP options: parsed from the raw bytes the kernel copies, and summarised as an
//! order-preserving signature (used by the fingerprints and written with every event).

/// One parsed TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption {
    Eol,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackOk,
    Sack,
    Timestamp {
        value: u32,
        echo: u32,
    },
    /// Another option kind (with its length), or a malformed one (length 0).
    Other {
        kind: u8,
        len: u8,
    },
}

/// Parses raw TCP option bytes in order. Stops at a malformed length.
pub fn parse_tcp_options(raw: &[u8]) -> Vec<TcpOption> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let kind = raw[i];
        match kind {
            0 => {
                out.push(TcpOption::Eol);
                break;
            }
            1 => {
                out.push(TcpOption::Nop);
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(&len) = raw.get(i + 1) else {
            out.push(TcpOption::Other { kind, len: 0 });
            break;
        };
        let len_us = usize::from(len);
        if len < 2 || i + len_us > raw.len() {
            out.push(TcpOption::Other { kind, len: 0 });
            break;
        }
        let body = &raw[i + 2..i + len_us];
        out.push(match (kind, body.len()) {
            (2, 2) => TcpOption::Mss(u16::from_be_bytes([body[0], body[1]])),
            (3, 1) => TcpOption::WindowScale(body[0]),
            (4, 0) => TcpOption::SackOk,
            (5, _) => TcpOption::Sack,
            (8, 8) => TcpOption::Timestamp {
                value: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                echo: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            },
            _ => TcpOption::Other { kind, len },
        });
        i += len_us;
    }
    out
}

/// The option layout as a compact, order-preserving signature: `M1460,N,W7,N,N,S,T,K,E`
/// (MSS with value, NOP, window scale with value, SACK permitted, timestamp, SACK, end of
/// list; `?k` for another kind). Empty when there are no options.
pub fn tcp_signature(opts: &[TcpOption]) -> String {
    let parts: Vec<String> = opts
        .iter()
        .map(|o| match o {
            TcpOption::Eol => "E".into(),
            TcpOption::Nop => "N".into(),
            TcpOption::Mss(v) => format!("M{v}"),
            TcpOption::WindowScale(v) => format!("W{v}"),
            TcpOption::SackOk => "S".into(),
            TcpOption::Sack => "K".into(),
            TcpOption::Timestamp { .. } => "T".into(),
            TcpOption::Other { kind, .. } => format!("?{kind}"),
        })
        .collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_linux_and_nmap() {
        let linux = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let o = parse_tcp_options(&linux);
        assert_eq!(
            o,
            [
                TcpOption::Mss(1460),
                TcpOption::SackOk,
                TcpOption::Timestamp { value: 1, echo: 0 },
                TcpOption::Nop,
                TcpOption::WindowScale(7)
            ]
        );
        assert_eq!(tcp_signature(&o), "M1460,S,T,N,W7");
        assert_eq!(tcp_signature(&parse_tcp_options(&[2, 4, 5, 0xb4])), "M1460");
        assert_eq!(tcp_signature(&parse_tcp_options(&[])), "");
    }

    #[test]
    fn malformed_options_stop_the_walk() {
        assert_eq!(
            parse_tcp_options(&[2, 1, 5]),
            [TcpOption::Other { kind: 2, len: 0 }]
        );
        assert_eq!(
            parse_tcp_options(&[1, 2]),
            [TcpOption::Nop, TcpOption::Other { kind: 2, len: 0 }]
        );
        assert_eq!(
            parse_tcp_options(&[2, 9, 0, 0]),
            [TcpOption::Other { kind: 2, len: 0 }]
        );
        assert_eq!(parse_tcp_options(&[0, 2, 4]), [TcpOption::Eol]);
        assert_eq!(
            parse_tcp_options(&[30, 4, 1, 2]),
            [TcpOption::Other { kind: 30, len: 4 }]
        );
    }
}
