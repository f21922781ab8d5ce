"""The dashboard's pages, registered by `dashboard/app.py` through `st.navigation`."""
