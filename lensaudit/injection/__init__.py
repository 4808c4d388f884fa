"""Injection engine: photometrically calibrated lensed arcs, batched on torch.

lenstronomy is the physics reference (SIE, SHEAR, SERSIC_ELLIPSE conventions); this
package imports only numpy and torch so that it runs on a bare GPU box.
"""
