# Toy LTM-Swin Mask R-CNN on the toy COCO shapes set:
# ./mask_rcnn_swin_t_coco_shapes_toy.py with only the backbone swapped,
# exactly as ./mask_rcnn_ltm_swin_t_toy.py swaps it (type and
# compression_ratio). tests/test_configs checks that the two swaps stay the
# same.
_base_ = ['./mask_rcnn_swin_t_coco_shapes_toy.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(type='LTMSwinTransformer', compression_ratio=0.7))
