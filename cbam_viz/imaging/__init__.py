"""Pictures in and maps out: decoding untrusted files safely within fixed limits, the per-format header scans that
enforce them before decoding, and the geometry between a photo, the model's input and its feature grids.
"""
