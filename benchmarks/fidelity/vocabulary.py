"""Word lists and sentence templates the fidelity conversations are written from.

Everything here is plain data. Answer words (names, cities, jobs, hobbies, codes,
event details) never occur in the filler, so a keyword found in a summary or an
excerpt can only have come from its evidence message; the generator's tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    """Someone in the user's life, named two ways: the plain word and a paraphrase."""

    word: str  # "sister": what questions and plain statements say
    phrase: str  # "my sis": what a paraphrased statement says instead
    subject: str  # "she"
    professional: bool = False  # no "what do they do for a living" about a dentist

    @property
    def object(self) -> str:
        return {"she": "her", "he": "him"}[self.subject]

    @property
    def possessive(self) -> str:
        return {"she": "her", "he": "his"}[self.subject]


RELATIONS = (
    Relation("sister", "my sis", "she"),
    Relation("brother", "my little bro", "he"),
    Relation("mother", "my mum", "she"),
    Relation("father", "my old man", "he"),
    Relation("grandmother", "my gran", "she"),
    Relation("husband", "my other half", "he"),
    Relation("best friend", "my oldest mate", "he"),
    Relation("neighbour", "the guy next door", "he"),
    Relation("cousin", "my aunt's son", "he"),
    Relation("flatmate", "the girl I share the apartment with", "she"),
    Relation("uncle", "my dad's brother", "he"),
    Relation("godmother", "the lady who stood for me at my christening", "she"),
    Relation("boss", "my manager", "she", professional=True),
    Relation("doctor", "my GP", "she", professional=True),
    Relation("landlord", "the owner of my flat", "he", professional=True),
    Relation("dentist", "the woman who fixes my teeth", "she", professional=True),
    Relation("accountant", "the chap who sorts out my taxes", "he", professional=True),
    Relation("piano teacher", "the woman who gives me keyboard lessons", "she", True),
)

# Attribute values. Each is used at most once per conversation; the first word of a
# tuple is the answer keyword.
NAMES = (
    "Okonkwo", "Vasquez", "Lindqvist", "Haraldsen", "Ferreira", "Nakamura", "Abernathy",
    "Castellano", "Dubois", "Kowalczyk", "Oyelaran", "Petrakis", "Quintero", "Sorensen",
    "Achterberg", "Mwangi", "Szabo", "Iversen", "Baptiste", "Rautio",
)  # fmt: skip
CITIES = (
    "Lisbon", "Valparaiso", "Tallinn", "Hobart", "Quebec", "Marrakesh", "Bergen",
    "Ljubljana", "Cork", "Krakow", "Osaka", "Porto", "Trieste", "Halifax", "Dunedin",
    "Tbilisi", "Galway", "Leipzig", "Asheville", "Tucson", "Windhoek", "Cusco",
)  # fmt: skip
# (keyword, full job title)
JOBS = (
    ("biologist", "marine biologist"),
    ("chef", "pastry chef"),
    ("pilot", "airline pilot"),
    ("inspector", "tax inspector"),
    ("stenographer", "court stenographer"),
    ("technician", "wind turbine technician"),
    ("nurse", "veterinary nurse"),
    ("bookbinder", "bookbinder"),
    ("locksmith", "locksmith"),
    ("radiographer", "radiographer"),
    ("beekeeper", "beekeeper"),
    ("sommelier", "sommelier"),
    ("cartographer", "cartographer"),
    ("stonemason", "stonemason"),
    ("glassblower", "glassblower"),
    ("translator", "translator"),
    ("zookeeper", "zookeeper"),
    ("firefighter", "firefighter"),
)
# (keyword, as a noun for "the hobby is ...", as what one spends weekends doing)
HOBBIES = (
    ("pottery", "pottery", "throwing pottery on a wheel"),
    ("birdwatching", "birdwatching", "birdwatching on the marshes"),
    ("climbing", "rock climbing", "rock climbing at the quarry"),
    ("sourdough", "sourdough baking", "baking sourdough loaves"),
    ("chess", "chess", "playing chess in the square"),
    ("kayaking", "kayaking", "kayaking on the estuary"),
    ("origami", "origami", "folding origami cranes"),
    ("calligraphy", "calligraphy", "practising calligraphy"),
    ("salsa", "salsa dancing", "salsa dancing downtown"),
    ("fishing", "fly fishing", "fly fishing in mountain streams"),
    ("woodcarving", "woodcarving", "woodcarving spoons and bowls"),
    ("stargazing", "stargazing", "stargazing with a telescope"),
    ("knitting", "knitting", "knitting chunky jumpers"),
    ("archery", "archery", "practising archery at the club"),
    ("fencing", "fencing", "fencing at the sports hall"),
    ("bonsai", "bonsai", "pruning bonsai trees"),
    ("geocaching", "geocaching", "geocaching in the woods"),
    ("juggling", "juggling", "juggling with clubs"),
)

# Statements and questions per attribute. {rel}: the relation's word; {phrase}: its
# paraphrase; {subj}/{pos}: its pronouns; {value}: the attribute value.
PLAIN_STATEMENTS = {
    "name": "By the way, my {rel}'s name is {value}.",
    "job": "My {rel} works as a {value} these days.",
    "city": "My {rel} moved to {value} last {month}.",
    "hobby": "My {rel}'s big hobby is {value}.",
}
PARAPHRASED_STATEMENTS = {
    "name": "{Phrase} goes by {value}, for what it's worth.",
    "job": "{Phrase} has a job as a {value}.",
    "city": "{Phrase} packed up and now rents a place in {value}.",
    "hobby": "{Phrase} spends every weekend {value}.",
}
PLAIN_QUESTIONS = {
    "name": "What is the name of my {rel}?",
    "job": "What work does my {rel} do?",
    "city": "Which city did my {rel} move to?",
    "hobby": "What hobby does my {rel} have?",
}
PARAPHRASED_QUESTIONS = {
    "name": "What is my {rel} called?",
    "job": "What does my {rel} do for a living?",
    "city": "Where did my {rel} relocate?",
    "hobby": "How does my {rel} like to unwind?",
}
PRONOUN_QUESTIONS = {
    "name": "What was {pos} name again?",
    "job": "What does {subj} do for work again?",
    "city": "Where did {subj} move to?",
    "hobby": "What is {pos} hobby again?",
}
TWO_FACT_QUESTIONS = {
    "name": "What are the names of my {rel} and my {rel2}?",
    "job": "What work do my {rel} and my {rel2} do?",
    "city": "Which cities did my {rel} and my {rel2} move to?",
    "hobby": "What hobbies do my {rel} and my {rel2} have?",
}
MONTHS = ("January", "February", "April", "June", "August", "October", "November")

# The user's own facts, said in plain words: (statement, question, keyword) templates.
THINGS = (
    "locker", "garage door", "bike lock", "office safe", "storage unit", "alarm panel",
    "mailbox", "gym locker",
)  # fmt: skip
CODE_STATEMENT = "Note this: the code for my {thing} is {code}."
CODE_QUESTION = "What is the code for my {thing}?"
ITEMS = (
    "passport", "spare keys", "birth certificate", "old diaries", "camping stove",
    "wedding album", "tax papers", "violin",
)  # fmt: skip
# (keyword, place)
PLACES = (
    ("drawer", "desk drawer"),
    ("attic", "attic trunk"),
    ("suitcase", "blue suitcase"),
    ("cupboard", "kitchen cupboard"),
    ("shed", "garden shed"),
    ("bedside", "bedside cabinet"),
    ("basement", "basement shelf"),
    ("closet", "hallway closet"),
)
ITEM_STATEMENT = "For the record, I keep my {item} in the {place}."
ITEM_QUESTION = "Where do I keep my {item}?"

# The user's own facts, said with other words than the question: (statement, question,
# values). The value is the keyword.
SELF_PARAPHRASES = (
    (
        "We adopted a scruffy {value} called Biscuit from the shelter.",
        "What kind of animal do I own?",
        ("terrier", "greyhound", "dachshund", "spaniel"),
    ),
    (
        "I finally got myself a secondhand {value} estate.",
        "Which vehicle did I purchase?",
        ("Volvo", "Skoda", "Subaru", "Peugeot"),
    ),
    (
        "Nothing beats a mug of {value} first thing after waking up.",
        "What is my favourite beverage?",
        ("rooibos", "matcha", "chai", "yerba"),
    ),
    (
        "{value} make me break out in hives, so I steer clear of them.",
        "Which food am I allergic to?",
        ("Peanuts", "Shellfish", "Strawberries", "Walnuts"),
    ),
    (
        "I have been learning the {value} for three years now.",
        "Which musical instrument do I play?",
        ("cello", "oboe", "banjo", "accordion"),
    ),
)

# One headline per session day: (what "the day I ..." says, the headline, keyword).
EVENTS = (
    ("moved", "The removal van finally came, and I am sitting on a crate in the new flat.",
     "removal"),
    ("started the new job", "First day at the new office: my desk looks out over the harbour.",
     "harbour"),
    ("passed my driving test", "I passed the driving test at the second attempt, the "
     "examiner was very stern.", "examiner"),
    ("got back from Iceland", "Just landed after a week in Iceland, the glaciers were unreal.",
     "glaciers"),
    ("had my wisdom tooth out", "The wisdom tooth is out, and my cheek is swollen like a "
     "balloon.", "swollen"),
    ("became an aunt", "My niece arrived this morning, a tiny girl with a lot of dark hair.",
     "niece"),
    ("had no hot water", "The boiler broke down overnight, so no hot water until Friday.",
     "boiler"),
    ("got engaged", "We got engaged last night on the pier, I still cannot believe it.",
     "pier"),
    ("won the pub quiz", "Our team won the pub quiz thanks to a question about volcanoes.",
     "volcanoes"),
    ("sold the sofa", "I sold the old sofa online to a student who carried it home on his "
     "head.", "student"),
    ("ran the half marathon", "Finished the half marathon in two hours and four minutes, my "
     "legs are jelly.", "jelly"),
    ("got the promotion", "I got the promotion I applied for, so I will lead the design team.",
     "promotion"),
    ("crashed my bike", "I came off my bike on the wet cobbles and grazed both elbows.",
     "cobbles"),
    ("adopted the kitten", "We brought the kitten home, she hid under the bath for an hour.",
     "kitten"),
)  # fmt: skip
GREETINGS = ("Morning!", "Hi again.", "Evening!", "Hello there.", "Big news today.", "Hey.")

# Setup exchanges that put a relation back on the table before a pronoun question.
PRONOUN_SETUPS = (
    "Let's talk about my {rel} again.",
    "I keep thinking about my {rel}.",
    "Back to my {rel} for a moment.",
    "Can we come back to my {rel}?",
)
PRONOUN_SETUP_REPLIES = (
    "Sure, what about {obj}?",
    "Of course. What would you like to know about {obj}?",
    "Happy to. What about {obj}?",
)

# Filler: chit-chat built from templates (a few hundred distinct sentences).
TIMES = (
    "This morning", "Yesterday evening", "After lunch", "Earlier today", "Last night",
    "On the way home", "Before work", "At the weekend",
)  # fmt: skip
ACTIVITIES = (
    "I tried a new soup recipe with lentils and cumin",
    "I watched an old film about sailors",
    "I sorted a box of old photographs",
    "I walked along the canal for an hour",
    "I repotted the tomato plants",
    "I cleaned the windows in the front room",
    "I finished a long novel about the war",
    "I bought fresh bread at the market",
    "I fixed the wobbly leg of the kitchen chair",
    "I listened to a podcast about ancient Rome",
    "I made a big pot of chilli",
    "I went for a swim at the leisure centre",
    "I caught up on emails for far too long",
    "I tidied the spare room at last",
    "I had a long nap on the couch",
    "I ironed a mountain of shirts",
    "I tried to learn a card trick",
    "I wrote a few postcards",
    "I baked a lemon cake that sank in the middle",
    "I rearranged the bookshelves by colour",
    "I queued for ages at the post office",
    "I took the recycling out in the rain",
    "I watched the football highlights",
    "I helped a stranger carry a pram up the stairs",
    "I did a jigsaw puzzle of a lighthouse",
    "I cycled to the hardware store",
    "I made pancakes for no particular reason",
    "I phoned the bank about a strange charge",
    "I defrosted the freezer",
    "I went to a yoga class and felt very stiff",
    "I planted some tulip bulbs",
    "I sat in the park with a coffee",
    "I organised my socks, which says a lot about my week",
    "I watched two episodes of a detective series",
    "I mended a hole in my favourite jumper",
    "I tried the new noodle bar by the cinema",
)
OBSERVATIONS = (
    "The weather turned grey again this afternoon.",
    "It has rained every day this week.",
    "The sun came out just as I got indoors.",
    "There was frost on the car windscreen.",
    "The wind nearly took my umbrella.",
    "It was warm enough to sit outside for once.",
    "Traffic on the ring road was slow.",
    "The train was delayed by twenty minutes.",
    "The bus driver waited for me, which was kind.",
    "The cafe near the station changed its menu.",
    "The corner shop has started selling flowers.",
    "Someone is building an extension down the street.",
    "Our team meeting ran over by half an hour.",
    "The printer at work jammed three times.",
    "The new project is moving slowly.",
    "Everyone at work seems tired this week.",
    "The cat from across the road sat on our wall all day.",
    "The heating makes a strange noise at night.",
    "The kitchen tap has started dripping.",
    "There was a loud concert in the park.",
    "The supermarket was out of eggs again.",
    "My phone screen has a new crack in it.",
    "The library has extended its opening hours.",
    "A fox was digging in the bins last night.",
    # Everyday uses of the words questions ask with (move, work, name, hobby, city),
    # so a question's own words alone do not single out its evidence.
    "We moved the team meeting to Thursday.",
    "I moved the desk closer to the window.",
    "Work was busy again today.",
    "I worked late to finish a report.",
    "The new coffee machine at work finally works.",
    "I can never remember the name of that actor.",
    "What was the name of that song on the radio?",
    "I really need a new hobby, something away from screens.",
    "The city centre was packed with tourists.",
    "Someone said the city might close the old pool.",
)
TOPICS = (
    "the new bakery on the corner", "that podcast about history", "the office coffee",
    "the local news", "the new bus timetable", "modern art", "the football season",
    "reality television", "electric scooters", "the price of butter", "open-plan offices",
    "self-checkout machines", "the new shopping centre", "crime novels", "cold showers",
)  # fmt: skip
OPINIONS = (
    "overrated", "better than it used to be", "surprisingly good", "a bit much",
    "worth a try", "not what it was", "fine, really", "hard to judge",
)  # fmt: skip
ASKS = (
    "Do you have any tips for sleeping better?",
    "Any ideas for a quick dinner?",
    "How do people stay motivated to exercise?",
    "What is a good way to learn a language?",
    "Any advice for keeping plants alive?",
    "How do I stop procrastinating?",
    "What should I read next?",
    "Is it worth getting up early?",
    "How often should I water a cactus?",
    "What is a nice day trip from here?",
    "How do I get better at small talk?",
    "Any tips for a long train journey?",
)
MEALS = ("coffee", "lunch", "dinner", "a quick walk")
SMALL_TALK = (
    "the weather", "the news", "nothing in particular", "old times", "holiday plans",
    "the neighbours' dog",
)  # fmt: skip
RELATION_CHAT = "I had {meal} with my {rel} today, we mostly talked about {topic}."
# Facts about other people, said like the planted ones but never asked about: a question
# asked with only its attribute's words ("Where did he move to?") matches many messages.
OTHER_PEOPLE = (
    "colleague", "gym buddy", "old school friend", "hairdresser", "team lead",
    "yoga instructor", "postman", "friend from choir",
)  # fmt: skip
OTHER_VALUES = {
    "name": ("Sam", "Alex", "Chris", "Jo", "Robin", "Kim"),
    "job": ("teacher", "electrician", "cashier", "software developer", "receptionist"),
    "city": ("the coast", "a village nearby", "the suburbs", "the other side of town"),
    "hobby": ("running", "gardening", "reading", "cooking", "cycling", "painting"),
}

ACKS = (
    "That sounds nice.", "I see.", "Interesting.", "Thanks for sharing that.",
    "Good to know.", "Ha, fair enough.", "That makes sense.", "Oh, really?",
    "Sounds like a full day.", "Nice.",
)  # fmt: skip
FOLLOW_UPS = (
    "What happened next?", "How did that make you feel?", "Tell me more about it.",
    "Anything else on your mind?", "Was it worth it?", "Would you do it again?",
    "How is the rest of your week looking?", "Did anyone join you?",
    "What are you up to later?", "How long did that take?", "Did it go to plan?",
    "Is that a regular thing for you?",
)  # fmt: skip
ADVICE = (
    "A small routine you can keep beats a big plan you drop.",
    "Start with ten minutes a day and build from there.",
    "Try writing it down first; it often helps.",
    "Ask a friend to do it with you, it makes it easier to stick to.",
    "Keep it simple and see how it goes for a week.",
)
FACT_ACKS = (
    "Noted, thanks for telling me.",
    "Got it, I will keep that in mind.",
    "Thanks, good to know.",
    "Understood.",
    "I will remember that.",
)
HEADLINE_REPLIES = (
    "What a day! How are you feeling about it?",
    "Wow, thanks for telling me. How are you holding up?",
    "That is big news. Tell me how it went.",
)
FACT_LEADS = ("", "", "Oh, before I forget: ", "Random thought. ", "Anyway. ")
