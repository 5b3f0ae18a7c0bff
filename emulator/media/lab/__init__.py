"""What labs use to see and break media: pcap capture of endpoints, and the impairments of
fault injection.
"""
