//! `--topology NODES,LLCS,CORES,THREADS`: the guest's /sys shows the NUMA
//! nodes, the L3 groups and the SMT siblings asked for, on Debian 12's
//! kernel and (with scx_bpfland attached) on the sched_ext kernel; and the
//! usage errors come before any boot. They never skip: what is missing
//! fails them with the remedy.

mod common;
use common::*;
use std::time::Instant;

/// 16 vCPUs under TCG in one thread (QEMU 7.2): slow, so generous.
const TOPOLOGY_TIMEOUT_SECS: &str = "600";

/// The guest's view, in CPU order: each node's CPUs, then each CPU's L3
/// (with its level) and its SMT siblings.
const SYS_VIEW: &str = r#"cd /sys/devices/system
echo "nodes $(ls -d node/node[0-9]* | wc -l)"
n=0; while [ -d node/node$n ]; do echo "node$n $(cat node/node$n/cpulist)"; n=$((n+1)); done
c=0; while [ -d cpu/cpu$c ]; do d=cpu/cpu$c
  echo "cpu$c L$(cat $d/cache/index3/level)=$(cat $d/cache/index3/shared_cpu_list) smt=$(cat $d/topology/thread_siblings_list)"
  c=$((c+1)); done"#;

/// A cpulist as the kernel prints a contiguous group: `4-7`, or `4`.
fn cpulist(first: u32, count: u32) -> String {
    match count {
        1 => first.to_string(),
        _ => format!("{first}-{}", first + count - 1),
    }
}

/// What [`SYS_VIEW`] prints for `nodes,llcs,cores,threads`: CPUs numbered
/// node by node, LLC by LLC, core by core.
fn expected_view(nodes: u32, llcs: u32, cores: u32, threads: u32) -> Vec<String> {
    let per_llc = cores * threads;
    let per_node = llcs * per_llc;
    let mut lines = vec![format!("nodes {nodes}")];
    lines.extend((0..nodes).map(|n| format!("node{n} {}", cpulist(n * per_node, per_node))));
    lines.extend((0..nodes * per_node).map(|c| {
        let l3 = cpulist(c / per_llc * per_llc, per_llc);
        let smt = cpulist(c / threads * threads, threads);
        format!("cpu{c} L3={l3} smt={smt}")
    }));
    lines
}

fn lines(out: &std::process::Output) -> Vec<String> {
    stdout(out).lines().map(str::to_owned).collect()
}

#[test]
fn two_nodes_of_two_llcs_of_two_cores_of_two_threads_are_what_sys_shows() {
    let t0 = Instant::now();
    let out = run_timed(
        TOPOLOGY_TIMEOUT_SECS,
        &["--topology", "2,2,2,2", "--memory", "1024", "--timeline"],
        &["/bin/busybox", "sh", "-c", SYS_VIEW],
    );
    eprintln!("2,2,2,2 (16 vCPUs) whole run: {:?}", t0.elapsed());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let want = expected_view(2, 2, 2, 2);
    // The groupings spelt out once, against a slip in `expected_view`.
    assert_eq!(want[1..3], ["node0 0-7", "node1 8-15"]);
    assert_eq!(want[3], "cpu0 L3=0-3 smt=0-1");
    assert_eq!(want[18], "cpu15 L3=12-15 smt=14-15");
    assert_eq!(lines(&out), want);
}

#[test]
fn bpfland_attaches_on_one_node_of_two_llcs_and_sees_that_topology() {
    let dir = sid_kernel_dir();
    let kernel = dir.join("vmlinuz");
    let log = scratch("topology-bpfland").join("sched.log");
    let t0 = Instant::now();
    let script =
        format!("cat /sys/kernel/sched_ext/state /sys/kernel/sched_ext/root/ops; {SYS_VIEW}");
    let out = run_timed(
        TOPOLOGY_TIMEOUT_SECS,
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--modules",
            dir.to_str().unwrap(),
            "--topology",
            "1,2,2,1",
            "--memory",
            "512",
            "--timeline",
            "-v",
            "--scheduler",
            &bpfland(),
            "--sched-log",
            log.to_str().unwrap(),
        ],
        &["/bin/busybox", "sh", "-c", &script],
    );
    eprintln!("1,2,2,1 with scx_bpfland whole run: {:?}", t0.elapsed());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = lines(&out);
    assert_eq!(lines[0], "enabled", "{lines:?}");
    assert!(lines[1].starts_with("bpfland"), "{lines:?}");
    let want = expected_view(1, 2, 2, 1);
    assert_eq!(
        want[1..],
        [
            "node0 0-3",
            "cpu0 L3=0-1 smt=0",
            "cpu1 L3=0-1 smt=1",
            "cpu2 L3=2-3 smt=2",
            "cpu3 L3=2-3 smt=3"
        ]
    );
    assert_eq!(lines[2..], want);
    let err = stderr(&out);
    assert!(err.contains("phase=SchedulerAttached"), "{err}");
    // bpfland's own reading of the same /sys.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("NUMA nodes: 1") && log.contains("SMT off"),
        "{log}"
    );
}

#[test]
fn cpus_that_disagree_with_the_topology_are_refused_naming_both() {
    // A kernel that does not exist: the check comes before it is looked for.
    let out = run_timed(
        "60",
        &[
            "--cpus",
            "4",
            "--topology",
            "2,2,2,2",
            "--kernel",
            "/nonexistent/vmlinuz",
        ],
        &["/bin/true"],
    );
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "--cpus 4 and --topology 2,2,2,2 disagree: the topology has 16 vCPUs; \
             give --cpus 16 or leave --cpus out"
        ),
        "{}",
        stderr(&out)
    );
    let out = run_timed("60", &["--topology", "2,x,2,1"], &["/bin/true"]);
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("'2,x,2,1' for '--topology <N,L,C,T>': LLCS must be a number from 1 to 64"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_memory_too_small_for_its_nodes_is_refused_before_the_boot() {
    let t0 = Instant::now();
    let out = run_timed(
        "60",
        &["--topology", "16,1,1,1", "--memory", "256"],
        &["/bin/true"],
    );
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    assert!(t0.elapsed().as_secs() < 30, "no boot: {:?}", t0.elapsed());
    assert!(
        stderr(&out).contains(
            "--memory 256 over --topology's 16 NUMA nodes is 16 MiB a node, below the 32 MiB \
             each node needs; give --memory 512 or more"
        ),
        "{}",
        stderr(&out)
    );
}
