#!/usr/bin/env bash
# The main job (until the full pipeline lands): set up, then train, apply and evaluate the unpaired translator
# bundle on the real multi-contrast brain MRI in ../shared/data, logging every stage to one MLflow SQLite store.
#
#   PROFILE=quick (default, ~11 min on a 2-core CPU) | cpu128 (128 px whole slices, resize up-sampling, 14 + 14
#           epochs: ~42 min of CUT on a 2-core AMX CPU in bf16, from the 85-93 s epoch measured on a quiet machine)
#           | full (reference widths and schedule, for a GPU)
#   METHOD=cyclegan (default) | cut | fastcut
#   CONTRAST_B=t2w (default) | t2f   OUT=runs/translator_demo   DATA=../shared/data/mri_brain_multicontrast
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
PROFILE=${PROFILE:-quick}
CONTRAST_B=${CONTRAST_B:-t2w}
METHOD=${METHOD:-cyclegan}
OUT=$(realpath -m "${OUT:-runs/translator_demo}")
DATA=$(realpath -m "${DATA:-../shared/data/mri_brain_multicontrast}")
BUNDLE=bundles/unpaired_translator
[ -d "$DATA" ] || { echo "multi-contrast MRI not found at $DATA (see docs/data.md)" >&2; exit 1; }
mkdir -p "$OUT"
export MLFLOW_TRACKING_URI="sqlite:///$OUT/mlruns.db"

case "$PROFILE" in
  quick) NET=(--image_size "[64,64]" --ngf 32 --num_res_blocks 6); TRAIN=(--ndf 32 --epochs_constant 8 --epochs_decay 8) ;;
  cpu128) NET=(--image_size "[128,128]" --crop_size "\$None" --ngf 32 --num_res_blocks 6 --upsample resize)
          TRAIN=(--ndf 32 --epochs_constant 14 --epochs_decay 14) ;;
  full)  NET=(--image_size "[256,256]" --crop_size "\$None" --ngf 64 --num_res_blocks 9)
         TRAIN=(--ndf 64 --epochs_constant 100 --epochs_decay 100) ;;
  *) echo "unknown PROFILE=$PROFILE (quick|full)" >&2; exit 1 ;;
esac
case "$METHOD" in
  cyclegan) TRAIN_CFG="$BUNDLE/configs/train.json" ;;
  cut) TRAIN_CFG="['$BUNDLE/configs/train.json','$BUNDLE/configs/train_cut.json']" ;;
  fastcut) TRAIN_CFG="['$BUNDLE/configs/train.json','$BUNDLE/configs/train_cut.json','$BUNDLE/configs/train_fastcut.json']" ;;
  *) echo "unknown METHOD=$METHOD (cyclegan|cut|fastcut)" >&2; exit 1 ;;
esac
# one model folder per task, method and profile, so that --resume never continues another task's training
COMMON=(--bundle_root "$BUNDLE" --dataset_dir "$DATA" --contrast_b "$CONTRAST_B" --cache_dir "$OUT/cache"
        --ckpt_dir "$OUT/models_t1c_to_${CONTRAST_B}_${PROFILE}$([ "$METHOD" = cyclegan ] || echo "_$METHOD")")

echo "[demo] 1/3 training the translator ($METHOD, t1c -> $CONTRAST_B, profile $PROFILE)"
$PY -m monai.bundle run --config_file "$TRAIN_CFG" "${COMMON[@]}" "${NET[@]}" "${TRAIN[@]}" \
    --output_dir "\$'$OUT/train'" --resume True --tracking mlflow --experiment_name synpriv_translator \
    --run_name "train_t1c_to_${CONTRAST_B}"
echo "[demo] 2/3 synthesising $CONTRAST_B for the held-out subject"
$PY -m monai.bundle run --config_file "$BUNDLE/configs/inference.json" "${COMMON[@]}" "${NET[@]}" \
    --output_dir "\$'$OUT/inference_${CONTRAST_B}_${PROFILE}'" --overwrite True
echo "[demo] 3/3 scoring against the real $CONTRAST_B and the intensity-matched input"
$PY -m monai.bundle run --config_file "['$BUNDLE/configs/inference.json','$BUNDLE/configs/evaluate.json']" \
    "${COMMON[@]}" "${NET[@]}" --output_dir "\$'$OUT/evaluate'" --tracking mlflow \
    --experiment_name synpriv_translator --run_name "evaluate_t1c_to_${CONTRAST_B}"
$PY -m monai_synpriv.cli translation-report "$OUT/evaluate/metrics/translation_metrics.json" --out "$OUT/results.md"
echo "[demo] results: $OUT/results.md; pictures: $OUT/train/images, $OUT/evaluate/images;"
echo "[demo] synthetic images + paired datalist: $OUT/inference_${CONTRAST_B}_${PROFILE}/synthetic; MLflow: $MLFLOW_TRACKING_URI"
