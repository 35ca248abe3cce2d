"""NeRF-RCNN: 3D object detection and instance masks on a radiance grid (Instance-NeRF's 3D stage).

Input: a scene's RGB + alpha grid (``features/<scene>.npz``). Output: ``Detections`` (boxes in voxel units,
classes 1..10, scores, full-grid boolean masks). Modules: ``box_ops`` (IoU, coder, NMS), ``roi_align``
(crop-and-resize RoIAlign, mask crop/paste), ``backbone`` (VGG + FPN), ``rpn`` (FCOS proposals), ``heads``,
``model`` (``NeRFRCNN``, ``predict_scene``), ``data`` (samples, augmentation), ``train`` (``train_rcnn``,
``evaluate_rcnn``, ``load_rcnn``), ``cli`` (``nerfseg train-rcnn``).

Import the submodules directly; this package imports nothing so ``import nerfseg.instance_nerf.rcnn`` stays cheap.
"""
