"""``injection_realism``: injected arcs vs real lenses, before completeness is trusted."""

import dagster as dg
import pandas as pd

from assets._wiring import GPU_OP_TAGS, json_meta, png_metadata, schema_metadata, side_table_files_metadata
from assets.cutouts import cutouts
from lensaudit.cutouts.store import CutoutReader
from lensaudit.injection.realism_run import run_realism
from lensaudit.plots import realism_histograms
from lensaudit.store import partition_file, safe_join, write_parquet_atomic
from lensaudit.tables import read_table
from lensaudit.tables import INJECTION_REALISM_SCHEMA
from resources.device import DeviceResource
from resources.settings import LensauditSettings


@dg.asset(op_tags=GPU_OP_TAGS, group_name="injection", kinds={"torch", "parquet"}, deps=[cutouts], metadata=schema_metadata("injection_realism"),
          description="The default source prior injected into test-split negative hosts, compared with the real "
                      "lenses' cutouts: unclipped arc annulus S/N (of the observable injections, matched-filter "
                      "S/N >= 20), arc-only colours, the noise added inside the arc footprints; per-injection "
                      "parameters, magnification and matched-filter S/N, histograms in metadata.")
def injection_realism(context: dg.AssetExecutionContext, settings: LensauditSettings,
                      device: DeviceResource) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    records, noise = run_realism(read_table(home, "cutouts"), read_table(home, "training_manifest"),
                                 CutoutReader(safe_join(home, "cutout_store")), profile.realism_seed,
                                 profile.realism_n_inject, profile.realism_real_tiers, device.torch_device())
    out = partition_file(home, "injection_realism", "data")
    write_parquet_atomic(records[INJECTION_REALISM_SCHEMA.names], out, schema=INJECTION_REALISM_SCHEMA)
    write_parquet_atomic(noise, partition_file(home, "injection_realism_arc_noise", "data"))
    inj, real = records[records["kind"] == "injected"], records[records["kind"] == "real"]
    summary = {k: {q: float(d["snr_combined"].quantile(q / 100)) for q in (10, 50, 90)} for k, d in
               (("injected", inj), ("real", real)) if len(d)}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(records), "injections": len(inj), "real_lenses": len(real),
        "real_tiers": ",".join(profile.realism_real_tiers), "snr_quantiles": json_meta(summary),
        "arc_noise_pixels": len(noise),
        "median_magnification": float(pd.to_numeric(inj["magnification"]).median()) if len(inj) else float("nan"),
        "histograms": png_metadata(realism_histograms(records), safe_join(home, "plots", "injection_realism.png")),
        **side_table_files_metadata(home, "injection_realism"),
    })


