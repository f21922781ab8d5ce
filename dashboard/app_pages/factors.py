"""ImageNet-X factors: per error category, how much more often each factor of variation is marked than on the images
predicted correctly (imagenet-val; CC BY-NC 4.0 annotations)."""

from __future__ import annotations

import streamlit as st

from dashboard import detail_extras, state

st.title("ImageNet-X factors of variation")
st.caption("Idrissi et al. (2023) annotated 48,868 ImageNet validation images with the factors that make each one "
           "unusual (pose, background, pattern, color, style, partial view, …). A factor far above 1 in a category "
           "is marked much more often on the images of those errors than on the images predicted correctly. "
           "The sidebar's models, model families and groups apply; the dataset is always imagenet-val.")
detail_extras.factor_section(state.applied_filter("factors"), key="fx")
