#!/bin/bash
# Whole-area inference of an s2cr run as a Slurm job array: one array task per tile of grid
# rows, then one merge job once every tile has ended well.
#
#   TILES=32 PROJECT=/shared/my-fire RUN=default sbatch --array=0-31 slurm_infer.sh
#   sbatch --dependency=afterok:<array job id> --wrap "s2cr --project /shared/my-fire infer --run default --tiles 32 --merge"
#
# Every node must see the project folder at the same path and have s2cr on its PATH.
#SBATCH --job-name=s2cr-infer
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=02:00:00
set -euo pipefail
: "${PROJECT:?set PROJECT to the project folder}" "${TILES:?set TILES to the number of tiles (the array size)}"
export RAYON_NUM_THREADS="${SLURM_CPUS_PER_TASK:-4}"
exec s2cr --project "$PROJECT" -q infer --run "${RUN:-default}" --device "${DEVICE:-auto}" --tiles "$TILES" --tile "$SLURM_ARRAY_TASK_ID"
