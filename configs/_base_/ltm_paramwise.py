# The weight-decay rule every mmltm config shares: no parameter of a mask
# module (every one lives under a module attribute named ``token_merger``,
# whatever the merge mode) is weight-decayed. Decay would pull the mask
# module's step / projection towards zero, i.e. towards a fixed mask, and
# the norm / bias / flat decay multipliers of the recipes do not catch all of
# them (a 0-dim step is not "flat" in mmengine's sense, a projection weight
# is 2-D).
#
# Every root config (the baselines, which the LTM configs inherit, and
# ./ltm_readme_in1k_256.py) lists this file in its ``_base_`` and merges the
# key into its own ``optim_wrapper.paramwise_cfg.custom_keys``:
#
#     _base_ = ['<library config>', '<path>/_base_/ltm_paramwise.py']
#     optim_wrapper = dict(
#         paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
#
# (``pop`` consumes the helper, so the resolved config has no extra key; a
# key two ``_base_`` files both define is refused by mmengine, hence one
# helper key rather than an ``optim_wrapper`` here.)
#
# mmengine's DefaultOptimWrapperConstructor matches custom keys as
# substrings of the full parameter name, longest key first, and applies only
# the first match: 'token_merger' (12 characters) wins over the recipes'
# shorter keys ('norm', '.ln', '.pos_embed', '.cls_token', ...), and none of
# their longer keys ('absolute_pos_embed', 'relative_position_bias_table',
# ...) occurs in a mask-module parameter name, so these parameters get decay
# 0 and the recipes' base learning rate in every config.
# tests/test_configs/test_configs_build.py builds the optimizer of every
# config and checks both (and that no other parameter's group changes).
ltm_custom_keys = {'token_merger': dict(decay_mult=0.0)}
