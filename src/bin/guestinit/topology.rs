//! `--topology NODES,LLCS,CORES,THREADS`, in ktstr's order: NUMA nodes,
//! last-level caches per node, cores per LLC, threads per core. What the
//! user typed is untrusted: `Topology::parse` is a pure function that
//! names the field it refuses and never panics. `run::qemu` turns a
//! topology into `-smp` and `-numa`.

use std::fmt;

/// The most vCPUs a topology may have: QEMU's TCG runs them all in one
/// thread below 8.1 (`run::accel`), so more would only crawl.
pub const MAX_CPUS: u32 = 64;

/// A CPU topology: every field at least 1, their product at most
/// [`MAX_CPUS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    pub nodes: u32,
    pub llcs: u32,
    pub cores: u32,
    pub threads: u32,
}

/// A field of `--topology`, by the name its help gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Nodes,
    Llcs,
    Cores,
    Threads,
}

const FIELDS: [Field; 4] = [Field::Nodes, Field::Llcs, Field::Cores, Field::Threads];

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Nodes => "NODES",
            Field::Llcs => "LLCS",
            Field::Cores => "CORES",
            Field::Threads => "THREADS",
        })
    }
}

/// Why a `--topology` string was refused; clap prints it after the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadTopology {
    #[error("give four numbers, NODES,LLCS,CORES,THREADS (e.g. 2,2,2,2), not {count}")]
    FieldCount { count: usize },
    #[error("{field} must be a number from 1 to {MAX_CPUS}")]
    BadField { field: Field },
    #[error("that is {cpus} vCPUs (NODES x LLCS x CORES x THREADS): at most {MAX_CPUS}")]
    TooManyCpus { cpus: u64 },
}

impl Topology {
    /// `NODES,LLCS,CORES,THREADS`: four decimal numbers (ASCII digits
    /// only: no sign, no space), each from 1 to [`MAX_CPUS`], whose
    /// product is at most [`MAX_CPUS`].
    pub fn parse(spec: &str) -> Result<Topology, BadTopology> {
        let parts: Vec<&str> = spec.split(',').collect();
        let [nodes, llcs, cores, threads] = parts[..] else {
            return Err(BadTopology::FieldCount { count: parts.len() });
        };
        let mut values = [0u32; 4];
        for ((value, text), field) in values
            .iter_mut()
            .zip([nodes, llcs, cores, threads])
            .zip(FIELDS)
        {
            *value = number(text).ok_or(BadTopology::BadField { field })?;
        }
        let cpus = values.iter().map(|&v| u64::from(v)).product::<u64>();
        if cpus > u64::from(MAX_CPUS) {
            return Err(BadTopology::TooManyCpus { cpus });
        }
        let [nodes, llcs, cores, threads] = values;
        Ok(Topology {
            nodes,
            llcs,
            cores,
            threads,
        })
    }

    /// Every vCPU of the machine.
    pub fn cpus(&self) -> u32 {
        self.nodes * self.cpus_per_node()
    }

    pub fn cpus_per_node(&self) -> u32 {
        self.llcs * self.cores * self.threads
    }
}

/// A field's value: digits only, from 1 to [`MAX_CPUS`].
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|v| (1..=MAX_CPUS).contains(v))
}

/// As the user writes it, for messages.
impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Topology {
            nodes,
            llcs,
            cores,
            threads,
        } = self;
        write!(f, "{nodes},{llcs},{cores},{threads}")
    }
}

/// `--cpus` and `--topology` disagree: the topology has `topology.cpus()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disagree {
    pub cpus: u32,
    pub topology: Topology,
}

/// The run's vCPU count: `--topology`'s product, which a `--cpus` given
/// beside it must equal; else `--cpus`, else 1.
pub fn cpu_count(cpus: Option<u32>, topology: Option<Topology>) -> Result<u32, Disagree> {
    match (cpus, topology) {
        (Some(cpus), Some(topology)) if cpus != topology.cpus() => Err(Disagree { cpus, topology }),
        (_, Some(topology)) => Ok(topology.cpus()),
        (cpus, None) => Ok(cpus.unwrap_or(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(nodes: u32, llcs: u32, cores: u32, threads: u32) -> Topology {
        Topology {
            nodes,
            llcs,
            cores,
            threads,
        }
    }

    #[test]
    fn good_strings_parse_in_ktstrs_order() {
        for (spec, want, cpus) in [
            ("2,2,2,2", t(2, 2, 2, 2), 16),
            ("1,2,2,1", t(1, 2, 2, 1), 4),
            ("1,1,1,1", t(1, 1, 1, 1), 1),
            ("4,1,16,1", t(4, 1, 16, 1), 64),
            ("1,1,1,64", t(1, 1, 1, 64), 64),
            ("02,1,1,1", t(2, 1, 1, 1), 2),
        ] {
            let got = Topology::parse(spec).unwrap();
            assert_eq!((got, got.cpus()), (want, cpus), "{spec}");
        }
        assert_eq!(t(2, 2, 2, 2).cpus_per_node(), 8);
        assert_eq!(t(2, 3, 4, 1).to_string(), "2,3,4,1");
    }

    #[test]
    fn a_bad_string_names_its_field() {
        use BadTopology::*;
        let field = |field| BadField { field };
        for (spec, want) in [
            ("2,x,2,1", field(Field::Llcs)),
            ("0,1,1,1", field(Field::Nodes)),
            ("1,1,0,1", field(Field::Cores)),
            ("1,1,1,", field(Field::Threads)),
            ("1,1,1,65", field(Field::Threads)),
            ("+1,1,1,1", field(Field::Nodes)),
            ("1,-1,1,1", field(Field::Llcs)),
            ("1, 1,1,1", field(Field::Llcs)),
            ("1,1,99999999999999999999,1", field(Field::Cores)),
            ("1,1,1,1.5", field(Field::Threads)),
            ("", FieldCount { count: 1 }),
            ("2,2,2", FieldCount { count: 3 }),
            ("2,2,2,2,2", FieldCount { count: 5 }),
            ("4,4,4,2", TooManyCpus { cpus: 128 }),
            ("64,64,64,64", TooManyCpus { cpus: 16_777_216 }),
        ] {
            assert_eq!(Topology::parse(spec), Err(want), "{spec}");
        }
        let text = Topology::parse("2,x,2,1").unwrap_err().to_string();
        assert_eq!(text, "LLCS must be a number from 1 to 64");
    }

    #[test]
    fn cpus_and_topology_must_agree() {
        let topo = t(2, 2, 2, 2);
        assert_eq!(cpu_count(None, None), Ok(1));
        assert_eq!(cpu_count(Some(3), None), Ok(3));
        assert_eq!(cpu_count(None, Some(topo)), Ok(16));
        assert_eq!(cpu_count(Some(16), Some(topo)), Ok(16));
        assert_eq!(
            cpu_count(Some(4), Some(topo)),
            Err(Disagree {
                cpus: 4,
                topology: topo
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever the text: no panic, and what parses is within bounds
        /// and prints back to a string that parses to the same.
        #[test]
        fn any_text_parses_within_bounds_or_is_refused(spec in "[0-9,+x -]{0,16}") {
            if let Ok(topo) = Topology::parse(&spec) {
                let fields = [topo.nodes, topo.llcs, topo.cores, topo.threads];
                prop_assert!(fields.iter().all(|&f| f >= 1));
                prop_assert!(topo.cpus() <= MAX_CPUS);
                prop_assert_eq!(Topology::parse(&topo.to_string()), Ok(topo));
            }
        }

        /// Four numbers are accepted exactly when each is from 1 to 64 and
        /// their product is at most 64; the first field out of range is
        /// the one named.
        #[test]
        fn four_numbers_are_judged_by_the_bounds(f in prop::array::uniform4(0u32..80)) {
            let spec = format!("{},{},{},{}", f[0], f[1], f[2], f[3]);
            let product: u64 = f.iter().map(|&v| u64::from(v)).product();
            match Topology::parse(&spec) {
                Ok(topo) => {
                    prop_assert_eq!([topo.nodes, topo.llcs, topo.cores, topo.threads], f);
                    prop_assert!(product <= 64);
                }
                Err(BadTopology::BadField { field }) => {
                    let first = f.iter().position(|&v| !(1..=64).contains(&v));
                    prop_assert_eq!(first.map(|i| FIELDS[i]), Some(field));
                }
                Err(BadTopology::TooManyCpus { cpus }) => {
                    prop_assert!(f.iter().all(|&v| (1..=64).contains(&v)));
                    prop_assert_eq!(cpus, product);
                    prop_assert!(product > 64);
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
