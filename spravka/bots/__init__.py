"""Chat bots: thin interfaces over the same answer pipeline (``spravka bot telegram``)."""
