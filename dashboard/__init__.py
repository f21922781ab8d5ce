"""The Streamlit dashboard of the ImageNet error atlas (entry point: `streamlit run dashboard/app.py`)."""
