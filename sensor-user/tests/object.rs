//! Static checks of the embedded XDP object: each build of the program calls only BPF helpers
//! that the oldest kernel it is meant for has. No privileges needed; the verifier on old
//! kernels is exercised for real by `tests/tests/kernels.rs` (qemu).
use aya_obj::{Object, generated::bpf_insn};
use scanscope_common::{PROGRAM_NAME, PROGRAM_NAME_COMPAT};
use sensor_user::object;

/// BPF_JMP | BPF_CALL.
const CALL: u8 = 0x85;

/// The helpers the program may use: id, name, the kernel that brought them to XDP programs.
const KNOWN: &[(i32, &str, (u32, u32))] = &[
    (1, "map_lookup_elem", (4, 8)),
    (2, "map_update_elem", (4, 8)),
    (3, "map_delete_elem", (4, 8)),
    (5, "ktime_get_ns", (4, 8)),
    (85, "sk_lookup_udp", (4, 20)),
    (86, "sk_release", (4, 20)),
    (99, "skc_lookup_tcp", (5, 2)),
    (113, "probe_read_kernel", (5, 8)),
    (131, "ringbuf_reserve", (5, 8)),
    (132, "ringbuf_submit", (5, 8)),
    (133, "ringbuf_discard", (5, 8)),
    (189, "xdp_load_bytes", (5, 18)),
];

/// Helper ids called by one program (its own instructions plus any `.text` subprograms).
fn helpers_of(obj: &Object, program: &str) -> Vec<i32> {
    let prog = obj
        .programs
        .get(program)
        .unwrap_or_else(|| panic!("program {program} missing from the object"));
    let key = prog.function_key();
    let own = obj.functions.get(&key).expect("program function");
    let program_keys: Vec<(usize, u64)> = obj.programs.values().map(|p| p.function_key()).collect();
    let subprograms = obj
        .functions
        .iter()
        .filter(|(k, _)| !program_keys.contains(k))
        .map(|(_, f)| f);
    let mut ids: Vec<i32> = std::iter::once(own)
        .chain(subprograms)
        .flat_map(|f| f.instructions.iter())
        .filter(|i: &&bpf_insn| i.code == CALL && i.src_reg() == 0)
        .map(|i| i.imm)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn oldest_kernel(ids: &[i32]) -> (u32, u32) {
    ids.iter()
        .map(|id| {
            KNOWN
                .iter()
                .find(|(k, _, _)| k == id)
                .unwrap_or_else(|| panic!("helper #{id} is not in this test's table: add it with the kernel that brought it to XDP"))
                .2
        })
        .max()
        .unwrap_or((0, 0))
}

fn names(ids: &[i32]) -> Vec<&'static str> {
    ids.iter()
        .filter_map(|id| KNOWN.iter().find(|(k, _, _)| k == id).map(|k| k.1))
        .collect()
}

#[test]
fn each_build_calls_only_helpers_its_oldest_kernel_has() {
    let missing = (!object::embedded()).then(|| {
        "the eBPF object is not embedded (run `cargo xtask build-ebpf` first)".to_string()
    });
    if scanscope_testkit::gate::skip(missing) {
        return;
    }
    let obj = Object::parse(object::SCANSCOPE).expect("parse the embedded object");

    let compat = helpers_of(&obj, PROGRAM_NAME_COMPAT);
    eprintln!("{PROGRAM_NAME_COMPAT}: {:?}", names(&compat));
    assert!(
        compat.contains(&113),
        "compat copies with probe_read_kernel"
    );
    assert!(
        !compat.contains(&189),
        "compat must not call xdp_load_bytes"
    );
    assert!(
        oldest_kernel(&compat) <= (5, 15),
        "{PROGRAM_NAME_COMPAT} needs Linux {:?}",
        oldest_kernel(&compat)
    );

    let main = helpers_of(&obj, PROGRAM_NAME);
    eprintln!("{PROGRAM_NAME}: {:?}", names(&main));
    assert!(main.contains(&189), "main copies with xdp_load_bytes");
    assert!(
        !main.contains(&113),
        "main must not need CAP_PERFMON's probe_read_kernel"
    );
    assert_eq!(oldest_kernel(&main), (5, 18));
}
