//! Sharded projections over MPI (feature `mpi`): [`MpiComm`] is the
//! [`runtime::shard::Communicator`](crate::runtime::shard::Communicator) of an MPI communicator,
//! for [`Projection::project_shard_in_place`](crate::Projection::project_shard_in_place).
//!
//! ```no_run
//! use multiproj::{Projection, RadiusTarget, mpi::MpiComm};
//! use ndarray::Array2;
//!
//! let universe = mpi::initialize().expect("MPI initialized once");
//! let world = universe.world();
//! let comm = MpiComm::new(&world);
//! // This process's rows of a tensor sharded by rows (axis 0) across the job.
//! let mut rows = Array2::<f64>::ones((100, 64));
//! let proj = Projection::compile("l1 over dim0 of linf over dim1")?;
//! let report = proj.project_shard_in_place(&comm, &mut rows, 0, Some(RadiusTarget::Radius(10.0)))?;
//! println!("the whole tensor's norm: {}", report.norm_before);
//! # Ok::<(), multiproj::Error>(())
//! ```

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::traits::{CommunicatorCollectives, Root};

use crate::runtime::shard::{Communicator, ReduceOp};

/// The collectives of an MPI communicator. Sums are reduced onto rank 0 and broadcast from it,
/// so that every process receives the same bits (`MPI_Allreduce` may add in a different order
/// on different processes); maxima, which do not depend on the order, are all-reduced. MPI
/// errors abort the job (MPI's default error handler), so the methods do not fail.
#[derive(Debug)]
pub struct MpiComm<'a, C: mpi::traits::Communicator> {
    comm: &'a C,
}

impl<'a, C: mpi::traits::Communicator> MpiComm<'a, C> {
    pub fn new(comm: &'a C) -> Self {
        MpiComm { comm }
    }
}

impl<C: mpi::traits::Communicator> Communicator for MpiComm<'_, C> {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
    }

    fn all_gather(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, String> {
        let p = self.size();
        let n = i32::try_from(local.len())
            .map_err(|_| format!("{} values are too many for one MPI message", local.len()))?;
        let mut counts = vec![0i32; p];
        self.comm.all_gather_into(&n, &mut counts[..]);
        let mut displs = Vec::with_capacity(p);
        let mut total = 0i32;
        for &c in &counts {
            displs.push(total);
            total = total
                .checked_add(c)
                .ok_or("the gathered values are too many for one MPI message")?;
        }
        let mut all = vec![0.0f64; total as usize];
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            self.comm.all_gather_varcount_into(local, &mut part);
        }
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
            .collect())
    }

    fn all_reduce(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), String> {
        if buf.is_empty() {
            return Ok(());
        }
        let send = buf.to_vec();
        match op {
            ReduceOp::Max => self
                .comm
                .all_reduce_into(&send[..], buf, SystemOperation::max()),
            ReduceOp::Sum => {
                let root = self.comm.process_at_rank(0);
                if self.comm.rank() == 0 {
                    root.reduce_into_root(&send[..], buf, SystemOperation::sum());
                } else {
                    root.reduce_into(&send[..], SystemOperation::sum());
                }
                root.broadcast_into(buf);
            }
        }
        Ok(())
    }
}
