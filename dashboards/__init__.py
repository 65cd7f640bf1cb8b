"""The Streamlit dashboard (run scenarios, watch the venue, read attention, optimise, train)."""
