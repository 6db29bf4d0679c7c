#!/usr/bin/env bash
# Re-run every measurement behind the README's "Results" section on this
# machine. Each step's command and full output go to work_dirs/results/<step>.txt
# (the README quotes those files). Run after `make setup`; about 25 minutes on
# 2 CPU cores, most of it the benchmarks. Run nothing else meanwhile: the
# latency figures share the machine with whatever else runs.
#
#   bash tools/misc/collect_results.sh            # every step
#   bash tools/misc/collect_results.sh flops bench_backbone   # some steps
#
# Steps: machine flops flops_dense bench_backbone bench_reference
#        bench_mask_rcnn bench_cpu_time bench_scope sweep ib_toy demo
#        visualize (bench_scope: the merge-scope table, ~30 minutes idle)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
OUT=${MMLTM_RESULTS_DIR:-work_dirs/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore

ALL_STEPS=(machine flops flops_dense bench_backbone bench_reference bench_mask_rcnn bench_cpu_time bench_scope sweep ib_toy demo visualize)
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=("${ALL_STEPS[@]}")
for s in "${STEPS[@]}"; do
  case " ${ALL_STEPS[*]} " in *" $s "*) ;; *)
    echo "unknown step '$s'; allowed: ${ALL_STEPS[*]}" >&2; exit 2;; esac
done

run() {  # run STEP CMD...: echo the command, then tee its output
  local step=$1; shift
  echo "\$ $*" | tee "$OUT/$step.txt"
  "$@" 2>&1 | tee -a "$OUT/$step.txt"
}

last_of() {  # last_of LOG KEY: the last value of KEY that a run logged
  grep -o "$2: [0-9.]*" "$1" | tail -n1 | cut -d' ' -f2
}

ib_table() {  # the IB / no-IB comparison from the two toy training logs
  echo "| toy run (10 epochs, seed 0) | top-1 on toy val (16 images) | loss_cls (mean, last log window) | loss_ib = 0.1 x bound (mean, last log window) | ib_bound (last iteration) |"
  echo "|---|---|---|---|---|"
  for run in "CE + IB (ib_weight 0.1):ltm_swin_t_in1k_toy" "CE only (ib_weight 0):ltm_swin_t_noib_in1k_toy"; do
    log="$OUT/train_${run#*:}.txt"
    echo "| LTM-Swin-T toy, ${run%%:*} | $(last_of "$log" accuracy/top1) | $(last_of "$log" loss_cls) | $(last_of "$log" loss_ib) | $(last_of "$log" ib_bound) |"
  done
}

for step in "${STEPS[@]}"; do
  echo "===== $step ====="
  case $step in
    machine)
      run machine bash -c 'lscpu | grep -E "^(Model name|CPU\(s\)|Thread|Core)"; free -g | head -2;
        '"$PY"' -c "import torch, mmengine, mmcv, mmdet, mmseg, mmpretrain; print(\"torch\", torch.__version__, \"threads\", torch.get_num_threads(), \"| mmengine\", mmengine.__version__, \"mmcv\", mmcv.__version__, \"mmdet\", mmdet.__version__, \"mmseg\", mmseg.__version__, \"mmpretrain\", mmpretrain.__version__)"' ;;
    flops)
      run flops "$PY" tools/analysis_tools/get_flops.py ;;
    flops_dense)
      run flops_dense "$PY" tools/analysis_tools/get_flops.py --dense ;;
    bench_backbone)
      run bench_backbone "$PY" tools/analysis_tools/benchmark.py \
        configs/ltm_swin_t_8xb128_in1k.py --baseline configs/swin_t_8xb128_in1k.py \
        --part backbone --sizes 224 --batch 1 8 --runs 30 --threads 2 --overhead \
        --out-json "$OUT/bench_backbone.json" ;;
    bench_reference)
      # bench_backbone without mmltm's compiled kernels (PyTorch reference code)
      run bench_reference "$PY" tools/analysis_tools/benchmark.py \
        configs/ltm_swin_t_8xb128_in1k.py --baseline configs/swin_t_8xb128_in1k.py \
        --part backbone --sizes 224 --batch 1 8 --runs 30 --threads 2 --kernels off \
        --overhead --memory none ;;
    bench_mask_rcnn)
      run bench_mask_rcnn "$PY" tools/analysis_tools/benchmark.py \
        configs/mask_rcnn_ltm_swin_t_coco.py --baseline configs/mask_rcnn_swin_t_coco.py \
        --part both --sizes 800x1333 --batch 1 --runs 10 --threads 2 --fix-proposals \
        --out-json "$OUT/bench_mask_rcnn.json" ;;
    bench_cpu_time)
      # process CPU time on one thread: steadier than wall time on a shared
      # machine (time the host steals from this VM does not count)
      run bench_cpu_time_224 "$PY" tools/analysis_tools/benchmark.py \
        configs/ltm_swin_t_8xb128_in1k.py --baseline configs/swin_t_8xb128_in1k.py \
        --part backbone --sizes 224 --batch 1 8 --runs 20 --threads 1 --timer cpu \
        --memory none
      run bench_cpu_time_800 "$PY" tools/analysis_tools/benchmark.py \
        configs/mask_rcnn_ltm_swin_t_coco.py --baseline configs/mask_rcnn_swin_t_coco.py \
        --part backbone --sizes 800x1333 --batch 1 --runs 10 --threads 1 --timer cpu \
        --memory none ;;
    bench_scope)
      # merge_scope 'stage' (its per-arch default ratio) vs 'ffn' vs ToMe,
      # each against the baseline, interleaved: the README's merge-scope table
      swin="configs/ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco.py"
      swin_base="configs/ltm_swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py"
      variants=(--variants ltm/stage@default ltm/ffn tome --memory none --threads 2)
      run bench_scope_swin_224 "$PY" tools/analysis_tools/benchmark.py "$swin" \
        --baseline "$swin_base" "${variants[@]}" --part backbone --sizes 224 --batch 8 1 \
        --runs 30 --warmup 3
      run bench_scope_deit_224 "$PY" tools/analysis_tools/benchmark.py \
        configs/ltm_vit/ltm-deit-small_4xb256_in1k.py \
        --baseline configs/ltm_vit/deit-small_4xb256_in1k.py "${variants[@]}" \
        --part backbone --sizes 224 --batch 8 1 --runs 30 --warmup 3
      run bench_scope_swin_800 "$PY" tools/analysis_tools/benchmark.py "$swin" \
        --baseline "$swin_base" "${variants[@]}" --part backbone --sizes 800x1333 \
        --batch 1 --runs 20 --warmup 2
      run bench_scope_mask_rcnn "$PY" tools/analysis_tools/benchmark.py "$swin" \
        --baseline "$swin_base" "${variants[@]}" --part model --sizes 800x1333 \
        --batch 1 --runs 20 --warmup 1 --fix-proposals
      run bench_scope_upernet "$PY" tools/analysis_tools/benchmark.py \
        configs/ltm_swin/upernet_ltm-swin-t_8xb2-160k_ade20k-512x512.py \
        --baseline configs/ltm_swin/upernet_swin-t_8xb2-160k_ade20k-512x512.py \
        "${variants[@]}" --part both --sizes 512 --batch 1 --runs 20 --warmup 1
      run sweep_scope "$PY" tools/analysis_tools/sweep_ratio.py "$swin" \
        --baseline "$swin_base" --series ltm/ffn ltm/stage tome --ratios 0.5 0.7 0.9 \
        --size 224 --batch 8 --part backbone --runs 15 --warmup 2 --threads 2 \
        --out-dir "$OUT/sweep_scope" ;;
    sweep)
      run sweep "$PY" tools/analysis_tools/sweep_ratio.py configs/ltm_swin_t_8xb128_in1k.py \
        --modes ltm tome --ratios 1.0 0.9 0.8 0.7 0.6 0.5 --runs 10 --out-dir "$OUT/sweep"
      # like for like: ToMe's per-sample matching has no compiled kernel
      run sweep_reference "$PY" tools/analysis_tools/sweep_ratio.py \
        configs/ltm_swin_t_8xb128_in1k.py --modes ltm tome --ratios 1.0 0.9 0.8 0.7 0.6 0.5 \
        --runs 10 --kernels off --out-dir "$OUT/sweep_reference" ;;
    ib_toy)
      # the same toy schedule, seed and data order with and without the IB term
      for cfg in ltm_swin_t_in1k_toy ltm_swin_t_noib_in1k_toy; do
        run "train_$cfg" "$PY" tools/train.py "configs/toy/$cfg.py" \
          --work-dir "work_dirs/results_$cfg"
      done
      ib_table | tee "$OUT/ib_toy.txt" ;;
    demo)
      run demo "$PY" tools/demo.py --with-baseline --work-dir work_dirs/results_demo \
        --out-json "$OUT/demo.json" ;;
    visualize)
      # needs the toy LTM-Swin-T classifier of the ib_toy step
      ckpt=$(ls work_dirs/results_ltm_swin_t_in1k_toy/epoch_*.pth 2>/dev/null | tail -n1 || true)
      [ -n "$ckpt" ] || { echo "visualize: run the ib_toy step first" >&2; exit 1; }
      img=$(ls data/toy/imagenet/val/*/* | head -n1)
      run visualize "$PY" tools/analysis_tools/visualize_merging.py \
        configs/toy/ltm_swin_t_in1k_toy.py "$ckpt" "$img" --size 112 --stage 1 \
        --out "$OUT/merging.png" ;;
  esac
done
