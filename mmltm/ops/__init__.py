from . import fused
from .grid_plan import GridPlan, get_grid_plan
from .token_merging import (MAX_STEP, MERGE_MODES, GridTokenMerger, MergeMask,
                            TokenMerger, build_token_merger, check_compression_ratio,
                            check_merge_mode, merge_tokens, plan_merge_grid,
                            unmerge_add, unmerge_tokens)

__all__ = ['MAX_STEP', 'MERGE_MODES', 'GridPlan', 'GridTokenMerger', 'MergeMask',
           'TokenMerger', 'build_token_merger', 'check_compression_ratio',
           'check_merge_mode', 'fused', 'get_grid_plan', 'merge_tokens',
           'plan_merge_grid', 'unmerge_add', 'unmerge_tokens']
